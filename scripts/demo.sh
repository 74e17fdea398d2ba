#!/usr/bin/env bash
# The demo: walks a new user through every stage the appliance has, on the embedded default model.
# It uses its own disposable home, var/demo, so it never touches another APPLIANCE_HOME; the demo users'
# passwords and the key passphrase are generated into var/demo-secrets (0700).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export APPLIANCE_HOME="$PWD/var/demo"
secrets_dir="$PWD/var/demo-secrets"
export APPLIANCE_KEY_PASSPHRASE_FILE="$secrets_dir/key-passphrase"
export APPLIANCE_SESSION_FILE="$secrets_dir/session.json"
# Each person's own signing key lives with them (here: one folder, a key a person), under a passphrase of their own.
export APPLIANCE_PERSONAL_KEYS="$secrets_dir/personal-keys"
unset APPLIANCE_DATABASE_URL APPLIANCE_TOKEN APPLIANCE_KEY_PASSPHRASE

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }
expect_refusal() { if "$@"; then echo "(accepted: a refusal was expected)"; exit 1; else echo "(refused with exit status $?)"; fi; }
tamper_and_verify() {
  local copy=var/demo-tampered/helpdesk-triage
  rm -rf var/demo-tampered && mkdir -p var/demo-tampered
  cp -a "$APPLIANCE_HOME/artifacts/helpdesk-triage" "$copy"
  python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[4096] ^= 1; open(p, "wb").write(b)' \
    "$copy/adapter.gguf"
  appliance verify "$copy" || echo "(refused with exit status $?)"
}

cut_the_trail() {
  local copy=var/demo-tampered/audit-home
  rm -rf "$copy" && mkdir -p "$copy" && chmod 0700 "$copy"
  cp -a "$APPLIANCE_HOME/keys" "$APPLIANCE_HOME/logs" "$copy/"
  python3 - "$APPLIANCE_HOME/appliance.db" "$copy/appliance.db" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)
for (name,) in dst.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
    dst.execute(f"DROP TRIGGER {name}")
size = dst.execute("SELECT MAX(seq) FROM audit_event").fetchone()[0]
keep = size - 5
dst.execute("DELETE FROM audit_event WHERE seq > ?", (keep,))
dst.execute("DELETE FROM audit_node WHERE (idx + 1) * (1 << level) > ?", (keep,))
dst.execute("DELETE FROM audit_checkpoint WHERE tree_size > ?", (keep,))
dst.commit()
print(f"deleted events {keep + 1}..{size} with their tree nodes and checkpoints")
PY
  APPLIANCE_HOME="$copy" appliance audit verify || echo "(refused with exit status $?)"
}

restore_an_older_backup() {
  # An older backup restored loses what happened since: here the officer's revocation. The restore says why in a
  # signed marker beside the anchors; verify names the loss, and the gateway keeps the revoked adapter unserved.
  local archive=var/demo-backup.tar
  rm -rf "$archive" var/demo.before-restore-*
  APPLIANCE_SESSION_FILE="$secrets_dir/admin-session.json" appliance backup --out "$archive"
  APPLIANCE_PERSONAL_PASSPHRASE_FILE="$secrets_dir/officer.key-passphrase" \
    appliance revoke helpdesk-triage --reason "Revoked after the backup (the restore below loses this)."
  expect_refusal appliance restore "$archive" --force
  appliance restore "$archive" --force --reason "Drill: the live disk is taken to have failed."
  appliance login officer --password-file "$secrets_dir/officer.password" >/dev/null
  appliance audit verify
  python - <<'PY'
from appliance.artifacts.release import prove
from appliance.audit.follow import TrailFollower
from appliance.config import load_settings
from appliance.db import connect

settings = load_settings()
follower = TrailFollower(settings, connect(settings))
follower.start()
refusal, _ = prove(settings, follower, "helpdesk-triage", "", "smollm2")
print(f"the gateway's proof for helpdesk-triage: {refusal}")
PY
  rm -f "$archive"  # a copy of the whole home (about 1 GB); the home it replaced stays beside it, moved aside
}

serve_pid=""
kill_and_resume() {
  # A trainer killed with kill -9 (as the out-of-memory killer does) leaves no run hanging: resume finds its
  # process gone, marks the run failed with the cause, and continues from the newest checkpoint.
  sed -e 's/^max_steps: .*/max_steps: 4/' -e 's/^checkpoint_every: .*/checkpoint_every: 2/' \
    policies/recipes/smollm2-135m-lora-sft.yaml > var/demo-short-recipe.yaml
  appliance train var/demo-short-recipe.yaml --dataset helpdesk --name killed-demo --framework trl \
    > var/demo-killed.log 2>&1 &
  local trainer=$!
  for _ in $(seq 1 600); do grep -q '^step 3/4' var/demo-killed.log && break; sleep 0.5; done
  kill -9 "$trainer"; wait "$trainer" 2>/dev/null || true
  echo "(trainer $trainer killed with SIGKILL after step 3 of 4; its run still says running)"
  appliance runs show killed-demo | grep -E '^(status|steps_done|trainer) '
  { appliance doctor || true; } | grep 'training runs'
  appliance train --resume killed-demo
}

gateway_health() { { appliance doctor --gateway "http://127.0.0.1:$port" || true; } | grep -E '^\S+ +gateway '; }
stop_serving() { if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi; }
trap 'stop_serving; stop_service' EXIT
start_serving() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  appliance serve --model smollm2 --port "$port" > var/demo-serve.log 2>&1 &
  serve_pid=$!
  for _ in $(seq 1 300); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$port/readyz" 2>/dev/null; then break; fi
    sleep 0.5
  done
  cat var/demo-serve.log
  python3 -c 'import json, sys, urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))))' \
    "http://127.0.0.1:$port/readyz"
}
side_by_side() {
  APPLIANCE_SESSION_FILE="$secrets_dir/admin-session.json" appliance users limit engineer \
    --adapters helpdesk-triage --max-concurrent 8
  APPLIANCE_SESSION_FILE="$secrets_dir/admin-session.json" appliance tokens create --user engineer --json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' > "$secrets_dir/engineer.token"
  DEMO_URL="http://127.0.0.1:$port/v1" DEMO_TOKEN_FILE="$secrets_dir/engineer.token" python - <<'PY'
import os
import openai

client = openai.OpenAI(base_url=os.environ["DEMO_URL"], api_key=open(os.environ["DEMO_TOKEN_FILE"]).read().strip())
print("models this token may use:", [m.id for m in client.models.list()])
ticket = "My laptop will not turn on after this morning's update, and I have a client call at 2pm."
system = "You are the IT help desk triage assistant. Answer in exactly three lines: CATEGORY, PRIORITY, ACTION."
messages = [{"role": "system", "content": system}, {"role": "user", "content": ticket}]
print(f"ticket: {ticket}")
for model in ("smollm2", "helpdesk-triage"):
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=60, temperature=0)
    print(f"\n--- {model} ({reply.usage.completion_tokens} tokens)\n{reply.choices[0].message.content}")
print("\n--- helpdesk-triage, streamed:")
for chunk in client.chat.completions.create(model="helpdesk-triage", messages=messages, max_tokens=60,
                                            temperature=0, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
PY
}
what_clients_use() {
  DEMO_URL="http://127.0.0.1:$port/v1" DEMO_TOKEN_FILE="$secrets_dir/engineer.token" python - <<'PY'
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import openai
from pydantic import BaseModel

client = openai.OpenAI(base_url=os.environ["DEMO_URL"], api_key=open(os.environ["DEMO_TOKEN_FILE"]).read().strip())
ticket = "My laptop will not turn on after this morning's update, and I have a client call at 2pm."
tools = [{"type": "function", "function": {
    "name": "open_ticket", "description": "Open a help-desk ticket",
    "parameters": {"type": "object", "properties": {"summary": {"type": "string"},
                                                    "priority": {"enum": ["low", "normal", "high"]}},
                   "required": ["summary", "priority"]}}}]
call = client.chat.completions.create(model="helpdesk-triage", messages=[{"role": "user", "content": ticket}],
                                      tools=tools, tool_choice="required", max_tokens=80, temperature=0)
for c in call.choices[0].message.tool_calls or []:
    print(f"tool call: {c.function.name}({c.function.arguments})")


class Triage(BaseModel):
    category: Literal["hardware", "software", "network", "access"]
    urgent: bool


parsed = client.chat.completions.parse(model="helpdesk-triage", response_format=Triage, max_tokens=60,
                                       temperature=0, messages=[{"role": "user", "content": ticket}])
print(f"structured output (JSON schema, grammar-constrained): {parsed.choices[0].message.parsed!r}")
try:
    client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "x"}], max_tokens=2,
                                   extra_body={"lora": [{"id": 0, "scale": 1.0}]})
except openai.BadRequestError as exc:
    print(f"a backend field is refused, not passed on: {exc.body['message']}")


def ask(i: int) -> int:
    model = "helpdesk-triage" if i % 2 else "smollm2"
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": ticket}],
                                           max_tokens=48, temperature=0)
    return reply.usage.completion_tokens


for clients in (1, 8):
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        tokens = sum(pool.map(ask, range(clients * 2)))
    elapsed = time.perf_counter() - started
    print(f"{clients} client(s) at once, base and adapter mixed: {tokens / elapsed:.0f} tokens/s in all")
PY
}

rm -rf "$APPLIANCE_HOME" "$secrets_dir"
mkdir -p -m 0700 "$secrets_dir"
umask 077
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(18))'; }
random > "$APPLIANCE_KEY_PASSPHRASE_FILE"
# Each account gets a one-time password from whoever creates it (.first) and chooses its own at the first login.
for who in admin engineer officer; do random > "$secrets_dir/$who.first"; random > "$secrets_dir/$who.password"; done
for who in engineer officer; do random > "$secrets_dir/$who.key-passphrase"; done
{
  echo "Demo credentials (APPLIANCE_HOME=$APPLIANCE_HOME)"
  for who in admin engineer officer; do echo "  $who: $(cat "$secrets_dir/$who.password")"; done
} > "$secrets_dir/credentials.txt"
first_login() {  # NAME: log in with the one-time password, then choose one's own
  appliance login "$1" --password-file "$secrets_dir/$1.first"
  appliance passwd --old-password-file "$secrets_dir/$1.first" --new-password-file "$secrets_dir/$1.password"
}
someone_elses_token() {
  echo "The admin asks for a command-line (control) token carrying the officer's powers:"
  APPLIANCE_SESSION_FILE="$secrets_dir/admin-session.json" appliance tokens create --user officer --scope control \
    || echo "(refused with exit status $?)"
  echo "The admin takes a gateway token for the officer instead and tries to approve with it:"
  APPLIANCE_SESSION_FILE="$secrets_dir/admin-session.json" appliance tokens create --user officer --json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' > "$secrets_dir/officer-gateway.token"
  APPLIANCE_TOKEN="$(cat "$secrets_dir/officer-gateway.token")" \
    appliance approve helpdesk-triage --reason "approved with someone else's token" || echo "(refused with exit status $?)"
  echo "... and as the admin herself:"
  APPLIANCE_SESSION_FILE="$secrets_dir/admin-session.json" \
    appliance approve helpdesk-triage --reason "the admin approving" || echo "(refused with exit status $?)"
}
enrol_and_pin() {  # NAME: NAME enrols a personal key in their own process; the home's owner (root) pins it
  appliance login "$1" --password-file "$secrets_dir/$1.password" >/dev/null
  APPLIANCE_PERSONAL_PASSPHRASE_FILE="$secrets_dir/$1.key-passphrase" appliance keys enroll | tee "$secrets_dir/$1.enrol"
  local fingerprint
  fingerprint=$(sed -n 's/^enrolled personal key \([0-9a-f]*\) .*/\1/p' "$secrets_dir/$1.enrol")
  echo "$ appliance keys pin $fingerprint     (root, on an install: the pin file is root's)"
  appliance keys pin "$fingerprint"
}
forge_an_approval() {
  # As the engineer: another artifact of the run, packaged and signed with her own key.
  appliance package helpdesk-triage --name helpdesk-forged >/dev/null 2>&1
  appliance sign helpdesk-forged >/dev/null
  echo "Someone with the database (the service account) appends artifact.approve in the officer's name with the"
  echo "appliance's own code, and signs a checkpoint over it:"
  python - <<'PY'
from appliance.artifacts import registry
from appliance.audit.events import Event
from appliance.audit.log import checkpoint_now, record_alone
from appliance.config import load_settings
from appliance.context import Actor, Context
from appliance.db import connect

settings = load_settings()
service = Context(settings, connect(settings))
digest = registry.get(service.engine, settings, "helpdesk-forged").manifest_digest
seq = record_alone(service, Event("artifact.approve", "artifact", "helpdesk-forged", reason="approved",
                                  object_sha256=digest), Actor("officer", "officer", "session"))
checkpoint_now(service)
print(f"  event {seq}: artifact.approve helpdesk-forged by 'officer', in the signed trail")
PY
  appliance login officer --password-file "$secrets_dir/officer.password" >/dev/null
  for _ in $(seq 1 40); do
    appliance audit log --action serve.load --limit 50 | grep -q 'helpdesk-forged' && break; sleep 0.5
  done
  echo "The gateway, which serves only on an officer's own signed statement:"
  appliance audit log --action serve.load --limit 50 | grep 'helpdesk-forged'
  gateway_health
}
service_pid=""
stop_service() { if [ -n "$service_pid" ]; then kill "$service_pid" 2>/dev/null || true; wait "$service_pid" 2>/dev/null || true; service_pid=""; fi; }
through_the_socket() {
  local sock="$PWD/var/demo-run/control.sock"
  mkdir -p -m 0700 var/demo-run
  appliance service --socket "$sock" > var/demo-service.log 2>&1 &
  service_pid=$!
  for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.2; done
  echo "$ APPLIANCE_SOCKET=$sock appliance whoami"
  APPLIANCE_SOCKET="$sock" appliance whoami
  echo "$ APPLIANCE_SOCKET=$sock appliance artifacts list"
  APPLIANCE_SOCKET="$sock" appliance artifacts list
  echo "$ APPLIANCE_SOCKET=$sock appliance serve   (the service account's own: refused through the socket)"
  APPLIANCE_SOCKET="$sock" appliance serve || echo "(refused with exit status $?)"
  stop_service
  cat var/demo-service.log
}
echo "Demo home: $APPLIANCE_HOME (recreated on every run); secrets: $secrets_dir"

step "1. Create the home, the database, the signing keys (encrypted at rest) and the first admin" \
  appliance init --admin admin --password-file "$secrets_dir/admin.first"
step "2. The admin's password was set by the installer: it works once, for \`appliance passwd\`" \
  appliance login admin --password-file "$secrets_dir/admin.first"
echo "$ appliance users list"
appliance users list || echo "(refused with exit status $?: nothing but passwd until the admin chooses a password)"
echo "$ appliance passwd --old-password-file ... --new-password-file ..."
appliance passwd --old-password-file "$secrets_dir/admin.first" --new-password-file "$secrets_dir/admin.password"
echo "The admin adds an engineer and a compliance officer, each with a one-time password:"
appliance users add engineer --role engineer --password-file "$secrets_dir/engineer.first"
appliance users add officer --role officer --password-file "$secrets_dir/officer.first"
appliance users list
cp "$APPLIANCE_SESSION_FILE" "$secrets_dir/admin-session.json"
step "3. The officer and the engineer log in for the first time and choose their own passwords" first_login officer
first_login engineer
step "3b. The officer and the engineer each make a personal signing key in their own process (encrypted under a \
passphrase of their own, never seen by the appliance) and enrol it; root pins it outside the database: only what \
these keys sign counts as a release decision" enrol_and_pin officer
enrol_and_pin engineer
export APPLIANCE_PERSONAL_PASSPHRASE_FILE="$secrets_dir/engineer.key-passphrase"
echo "From here on the engineer acts (the admin manages people, keys and policies; it never trains or approves)."
appliance whoami
rm -rf var/demo-byo
python scripts/make_tiny_model.py qwen2 var/demo-byo/tiny-qwen2 >/dev/null
python scripts/make_tiny_model.py llama var/demo-byo/tiny-gpt2 --architecture GPT2LMHeadModel >/dev/null
step "4. Import the embedded default model (GGUF for llama.cpp + safetensors copy for training)" \
  appliance models import --embedded smollm2
step "4b. Bring your own model: a Qwen2-shaped transformers folder (random weights, written here) is imported; \
llama.cpp's own converter makes its GGUF and llama.cpp's quantizer takes it to the serving policy's type" \
  appliance models import var/demo-byo/tiny-qwen2 --name tiny-qwen2
step "4c. A folder of an architecture outside the tested list is refused before anything is copied" \
  expect_refusal appliance models import var/demo-byo/tiny-gpt2 --name tiny-gpt2
step "5. The model registry, with a sha256 for every file" appliance models list
step "6. Health check: versions, permissions, database, model digests, keys, audit trail, offline settings" \
  appliance doctor
chat_from_stdin() { echo "In one sentence, what is a LoRA adapter?" | appliance chat smollm2 - --max-tokens 60; }
step "7. A chat completion from the embedded model through llama.cpp (the prompt from stdin, out of ps; audited)" \
  chat_from_stdin
step "8. Ingest the example help-desk tickets: validate, scrub personal data (Presidio), lint, version" \
  appliance data ingest examples/helpdesk.jsonl --name helpdesk --model smollm2
step "9. What one scrubbed record looks like now (nothing personal is stored)" \
  appliance data export helpdesk --split eval --out var/demo-helpdesk-eval.jsonl
head -n 1 var/demo-helpdesk-eval.jsonl
step "9b. Personal data where it hides: mail headers, signatures, form fields, CPF, NINO, UK/BR phones, DE/BR addresses; \
French text read by spaCy's French pipeline" \
  appliance data ingest examples/international.jsonl --name international
appliance data export international --out var/demo-international.jsonl
python3 -c 'import json, sys; [print(json.loads(l)["messages"][0]["content"] + "\n--") for l in open(sys.argv[1])]' \
  var/demo-international.jsonl
step "10. Should we fine-tune at all? Base model zero-shot and few-shot, and how much of the answers is facts" \
  appliance advise helpdesk --recipe policies/recipes/smollm2-135m-lora-sft.yaml
appliance evals advice   # the verdicts as the audit trail keeps them (the console's Evaluations page shows the same)
step "11. Train a LoRA adapter on the scrubbed tickets (plan first, then progress; on CPU auto picks TRL in fp32)" \
  appliance train policies/recipes/smollm2-135m-lora-sft.yaml --dataset helpdesk --name helpdesk-triage
appliance runs list
step "11b. A trainer killed with kill -9 leaves no run hanging: found gone, marked failed with the cause, resumed" \
  kill_and_resume
step "12. Evaluate the adapter against its base model: task, forgetting, a local judge, leakage; the release gates" \
  appliance eval helpdesk-triage --judge smollm2
step "13. Package the evaluated adapter: PEFT adapter, GGUF LoRA for llama.cpp, provenance, report, model card" \
  appliance package helpdesk-triage
step "14. Sign it with the appliance's artifact key (OpenSSF model_signing, offline) and verify it" \
  appliance sign helpdesk-triage
appliance verify helpdesk-triage
appliance keys export-public --out "$secrets_dir/artifact-public.pem"
echo "The stock OpenSSF tool agrees:"
model_signing verify key "$APPLIANCE_HOME/artifacts/helpdesk-triage" \
  --signature "$APPLIANCE_HOME/artifacts/helpdesk-triage/model.sig" --public_key "$secrets_dir/artifact-public.pem"
step "15. A tampered copy (one bit of the GGUF LoRA flipped) is refused" tamper_and_verify
step "16. An engineer may not verify the audit trail: refused, and the refusal is itself audited" \
  bash -c 'appliance audit verify || echo "(refused with exit status $?)"'
step "17. Nobody acts with someone else's powers: the admin cannot mint the officer a command-line token, and a \
gateway token (queries only) approves nothing" someone_elses_token
step "18. The officer logs in and approves the adapter (four eyes: neither its trainer nor its packager), signing \
the decision with her own key" \
  appliance login officer --password-file "$secrets_dir/officer.password"
APPLIANCE_PERSONAL_PASSPHRASE_FILE="$secrets_dir/officer.key-passphrase" \
  appliance approve helpdesk-triage --reason "Gates passed and the model card was reviewed."
appliance artifacts list
step "19. The same appliance through its control socket: the service runs each command, the kernel names the OS \
account (on an install this is how every person reaches it, as themselves)" through_the_socket
step "20. Serve the base model and every approved adapter behind the OpenAI-compatible gateway (llama.cpp's \
llama-server: every open request decoded together, every approved adapter preloaded and chosen per request)" \
  start_serving
step "21. Query base and adapter with the official openai SDK, side by side (an API token for the engineer, whose \
adapters and limits the admin sets on the user: no token of theirs widens them)" \
  side_by_side
step "22. What users' own clients need: a tool call, structured output, backend fields refused, many users at once" \
  what_clients_use
step "22b. The running gateway as the console's Serving page reads it: ready, adapters loaded, requests, restarts" \
  gateway_health
appliance login engineer --password-file "$secrets_dir/engineer.password" >/dev/null
step "22c. An approval forged by someone with the database is refused at serve time: no officer's key signed it" \
  forge_an_approval
stop_serving
step "23. The officer reads the audit trail (every request is an event; each line names the OS account)" \
  appliance audit log --limit 25
step "24. ... has the tail signed and anchored, keeping her own copy (on an install the worker signs at the audit \
policy's cadence; the gateway never can)" appliance audit checkpoint --out "$secrets_dir/kept-checkpoint.json"
step "25. ... and verifies it: every event's hash, the Merkle tree, every signed checkpoint, the anchors outside \
the database, the pinned audit key" appliance audit verify --checkpoint "$secrets_dir/kept-checkpoint.json"
step "26. Someone with the database deletes the newest events, their tree nodes and checkpoints (in a copy of the \
home): the anchors outside the database name what is missing" cut_the_trail
step "27. An older backup restored (the officer's revocation since is lost): refused without a reason; with one, a \
signed restore marker that verify names, and the lost revocation still keeps the adapter unserved" \
  restore_an_older_backup
printf '\nDone. Everything the demo wrote is under %s; the demo credentials are in %s.\n' \
  "$APPLIANCE_HOME" "$secrets_dir/credentials.txt"
printf '\nTo look at all of it in a browser, open the admin console:\n'
printf '  APPLIANCE_HOME=%s .venv/bin/appliance console      # then http://127.0.0.1:8501\n' "$APPLIANCE_HOME"
printf 'and sign in as admin, engineer or officer with a password from %s.\n' "$secrets_dir/credentials.txt"
printf 'For the Serving and Playground pages, start the gateway beside it: APPLIANCE_HOME=%s .venv/bin/appliance serve --model smollm2\n' \
  "$APPLIANCE_HOME"
