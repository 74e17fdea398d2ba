#!/usr/bin/env bash
# Every test tier: lint, the generated docs, unit, integration (real model, real llama.cpp), browser, postgres,
# ansible (the playbook run for real into a temporary prefix, ansible-lint).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
bash scripts/system_packages.sh
export APPLIANCE_TEST_PG_URL=${APPLIANCE_TEST_PG_URL:-$(bash scripts/postgres.sh)}
echo "== ruff"
$bin/ruff check appliance tests bench scripts
echo "== docs/cli.md and docs/roles.md are current"
$bin/cog --check docs/cli.md docs/roles.md
echo "== pytest (all tiers)"
$bin/python -m pytest --durations=10 "$@"
