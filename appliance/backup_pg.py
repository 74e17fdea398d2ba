"""PostgreSQL's side of `backup` and `restore`: pg_dump and pg_restore with the password in their environment,
never on a command line; a scratch database to restore into, dropped unless it verifies; the switch that gives it
the live database's name."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from appliance.errors import InputError, StorageError


def tool(name: str) -> str:
    """pg_dump / pg_restore: on PATH, else Debian's versioned folder (the newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not candidates:
        raise StorageError(f"{name} is not installed (Debian: the postgresql-client package)")
    return str(candidates[-1])


def connection(url: str) -> tuple[list[str], dict]:
    """Connection arguments for the PostgreSQL tools; the password goes through the environment, never argv."""
    parsed = make_url(url)
    args = ["--dbname", parsed.database or "", "--host", parsed.host or "127.0.0.1",
            "--port", str(parsed.port or 5432)]
    if parsed.username:
        args += ["--username", parsed.username]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return args, env


def where(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _admin(url: str):
    """An autocommit engine on the server's maintenance database, for creating and renaming databases."""
    from sqlalchemy import create_engine

    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def check_target(url: str, force: bool) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            # Views and foreign tables count too: a database holding anything is not an empty target.
            tables = sum(len(names(schema="public")) for names in (
                found.get_table_names, found.get_view_names, found.get_materialized_view_names,
                found.get_foreign_table_names))
    except Exception as exc:  # noqa: BLE001 - any connection failure is one clear line
        raise StorageError(f"database {where(url)}: {exc}") from None
    finally:
        engine.dispose()
    if tables and not force:
        raise InputError(f"database {where(url)} is not empty ({tables} tables or views); restore into an empty "
                         f"database, or give --force to replace it")


def restore_dump(url: str, dump: Path) -> str:
    """Restore the dump into a new scratch database beside the target; returns its URL. The live database is
    not touched."""
    from sqlalchemy import text

    scratch = f"{make_url(url).database}_restoring_{uuid.uuid4().hex[:8]}"
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{scratch}"'))  # server DDL: no Core construct for databases
    except Exception as exc:  # noqa: BLE001 - one clear line: the role needs CREATEDB
        raise StorageError(f"cannot create the scratch database {scratch} to restore into (the database role "
                           f"needs CREATEDB): {str(exc).splitlines()[0]}") from None
    finally:
        admin.dispose()
    scratch_url = make_url(url).set(database=scratch).render_as_string(hide_password=False)
    args, env = connection(scratch_url)
    done = subprocess.run([tool("pg_restore"), "--no-owner", "--exit-on-error", *args, str(dump)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        drop(scratch_url)
        raise StorageError(f"pg_restore failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
    return scratch_url


def drop(scratch_url: str) -> None:
    from sqlalchemy import text

    from appliance.db.engine import _engine_for

    _engine_for(scratch_url).dispose()
    admin = _admin(scratch_url)
    try:
        with admin.connect() as conn:
            # server DDL: no Core construct for databases
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(scratch_url).database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def switch(url: str, scratch_url: str, keep_old: bool) -> None:
    """The verified scratch database takes the live one's name; the live one is kept aside (--force) or, when
    it was empty, dropped."""
    from sqlalchemy import text

    from appliance.db.engine import _engine_for

    live, scratch = make_url(url).database, make_url(scratch_url).database
    aside = f"{live}_before_restore_{datetime.now(UTC):%Y%m%d%H%M%S}"
    for each in (url, scratch_url):
        _engine_for(each).dispose()
    admin = _admin(url)
    try:
        with admin.connect() as conn:  # server administration (sessions, databases): the server's own SQL
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (:a, :b) "
                              "AND pid <> pg_backend_pid()"), {"a": live, "b": scratch})
            conn.execute(text(f'ALTER DATABASE "{live}" RENAME TO "{aside}"'))
            conn.execute(text(f'ALTER DATABASE "{scratch}" RENAME TO "{live}"'))
            if not keep_old:
                conn.execute(text(f'DROP DATABASE "{aside}" WITH (FORCE)'))
    except Exception as exc:  # noqa: BLE001
        raise StorageError(f"the restored database verified as {scratch} but could not replace {live}: "
                           f"{str(exc).splitlines()[0]}") from None
    finally:
        admin.dispose()
