#!/usr/bin/env bash
# The demo: walks a new user through every stage the appliance has, on the embedded default model.
# It uses its own disposable home, var/demo, so it never touches another APPLIANCE_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export APPLIANCE_HOME="$PWD/var/demo"
unset APPLIANCE_DATABASE_URL

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

rm -rf "$APPLIANCE_HOME"
echo "Demo home: $APPLIANCE_HOME (recreated on every run)"

step "1. Create the appliance's home and database" appliance init
step "2. Import the embedded default model (GGUF for llama.cpp + safetensors copy for training)" \
  appliance models import --embedded smollm2
step "3. The model registry, with a sha256 for every file" appliance models list
step "4. Health check: versions, permissions, database, model digests, offline settings" appliance doctor
step "5. A chat completion from the embedded model through llama.cpp" \
  appliance chat smollm2 "In one sentence, what is a LoRA adapter?" --max-tokens 60
printf '\nDone. Everything the demo wrote is under %s.\n' "$APPLIANCE_HOME"
