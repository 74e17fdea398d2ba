#!/usr/bin/env bash
# Start a throw-away PostgreSQL from Debian's package on loopback for the `postgres` test tier and print
# its URL. Re-running reuses the running server. Needs the `postgresql` package (.ci/run installs it).
set -euo pipefail
port=${APPLIANCE_TEST_PG_PORT:-55432}
data=${APPLIANCE_TEST_PG_DIR:-/tmp/appliance-test-pg}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
  echo "postgres.sh: Debian's postgresql package is not installed (apt-get install -y postgresql)" >&2
  exit 1
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -s "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
  as_pg "$bindir/initdb" -D "$data" -A trust -U postgres -E UTF8 >/dev/null
fi
if ! as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off" start >/dev/null
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
