"""Audit trail throughput on SQLite: appends (one transaction each, and batched), verification, inclusion proofs.

Run:  .venv/bin/python bench/audit_bench.py [--events 1000000] [--single 2000]

Each appliance figure is printed beside a baseline in the same run: the same rows inserted into a plain
table with no hashing, no Merkle nodes and no checkpoints, so the ratio is the cost of tamper evidence. The
appliance side anchors every event's leaf hash outside the database as its transaction commits (appended to the
anchor file, sent to the journal) and signs checkpoints at the shipped audit policy's cadence, each one anchored
too (appended and fsync'd), as on an install.
Targets: >= 1,000 events/s one transaction each, >= 20,000 events/s batched, 1,000,000 events verified in
under 10 s, an inclusion proof in under 10 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="total events for the batch and verify runs")
    parser.add_argument("--single", type=int, default=2000, help="events appended one transaction each")
    parser.add_argument("--batch", type=int, default=1000, help="events per batched transaction")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    os.environ["APPLIANCE_HOME"] = str(tmp / "home")
    os.environ["APPLIANCE_KEY_PASSPHRASE"] = "benchmark passphrase 0123456789"
    os.environ.pop("APPLIANCE_DATABASE_URL", None)

    from appliance.audit import merkle
    from appliance.audit.events import Event
    from appliance.audit.log import perfect_lookup, record, record_many
    from appliance.audit.verify import Trust, verify_log
    from appliance.config import load_settings
    from appliance.context import Actor, Context
    from appliance.db import connect, migrate, session_scope
    from appliance.fsutil import ensure_private_dir
    from appliance.keys.store import init_keys

    settings = load_settings()
    for path in settings.owned_dirs:
        ensure_private_dir(path)
    engine = connect(settings, create=True)
    migrate(engine)
    ctx = Context(settings, engine)
    init_keys(ctx)
    ctx = ctx.acting_as(Actor("bench", "engineer", "token"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE plain_event (seq INTEGER PRIMARY KEY, actor TEXT, action TEXT, "
                             "object_type TEXT, object_id TEXT, details TEXT)")

    def event(i: int) -> Event:
        return Event("bench.append", "bench", f"object-{i}", details={"i": i, "note": "benchmark event"})

    # One transaction per event.
    start = time.perf_counter()
    for i in range(args.single):
        with session_scope(engine) as s:
            record(ctx, s, event(i))
    single = args.single / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(args.single):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO plain_event (actor, action, object_type, object_id, details) "
                              "VALUES ('bench', 'bench.append', 'bench', :o, :d)"),
                         {"o": f"object-{i}", "d": json.dumps({"i": i, "note": "benchmark event"})})
    plain_single = args.single / (time.perf_counter() - start)
    print(f"append, one transaction each: {single:,.0f} events/s  (plain insert {plain_single:,.0f}/s, "
          f"ratio {single / plain_single:.2f}; target >= 1,000)")

    # Batches up to the total. Both sides get their rows built before the clock starts.
    remaining = args.events - args.single - 2
    elapsed = 0.0
    done = 0
    while done < remaining:
        n = min(args.batch, remaining - done)
        batch = [event(args.single + done + j) for j in range(n)]
        start = time.perf_counter()
        with session_scope(engine) as s:
            record_many(ctx, s, batch)
        elapsed += time.perf_counter() - start
        done += n
    batched = done / elapsed
    sample = min(done, 200_000)
    elapsed = 0.0
    insert = text("INSERT INTO plain_event (actor, action, object_type, object_id, details) "
                  "VALUES ('bench', 'bench.append', 'bench', :o, :d)")
    for k in range(0, sample, args.batch):
        rows = [{"o": f"object-{k + j}", "d": json.dumps({"i": k + j, "note": "benchmark event"})}
                for j in range(args.batch)]
        start = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(insert, rows)
        elapsed += time.perf_counter() - start
    plain_batched = sample / elapsed
    print(f"append, batches of {args.batch}: {batched:,.0f} events/s  (plain insert {plain_batched:,.0f}/s, "
          f"ratio {batched / plain_batched:.2f}; target >= 20,000)")

    start = time.perf_counter()
    report = verify_log(engine, Trust.of(settings))
    verify_s = time.perf_counter() - start
    assert report.ok, report.problems
    from appliance.audit.anchors import read as read_anchors

    found, _ = read_anchors(settings)
    leaves = sum(len(run.leaves) // 32 for run in found.leaves)
    print(f"anchored outside the database: every event's leaf as it committed ({leaves:,} in "
          f"{len(found.leaves):,} lines) and {len(found.checkpoints):,} checkpoints in {settings.anchor_path.name}; "
          f"{report.anchored:,} events covered")
    print(f"verify {report.events:,} events: {verify_s:.2f} s  ({report.events / verify_s:,.0f} events/s; "
          f"target 1,000,000 in < 10 s)")

    times = []
    with engine.connect() as conn:
        size = conn.execute(text("SELECT MAX(seq) FROM audit_event")).scalar()
        perfect = perfect_lookup(conn)
        root = bytes.fromhex(report.root)
        for seq in random.Random(0).sample(range(1, size + 1), 200):
            t0 = time.perf_counter()
            path = merkle.inclusion_path(seq - 1, size, perfect)
            ok = merkle.verify_inclusion(perfect(0, seq - 1), seq - 1, size, path, root)
            times.append((time.perf_counter() - t0) * 1000)
            assert ok
    print(f"inclusion proof (build + verify) in a tree of {size:,}: median {statistics.median(times):.2f} ms, "
          f"max {max(times):.2f} ms  (target < 10 ms)")
    _gateway_follow(settings, engine, ctx, event)
    _signed_approval(tmp, ctx)


def _gateway_follow(settings, engine, ctx, event) -> None:
    """The gateway's view of the trail: verified whole at start, then each new event against its anchored leaf."""
    from appliance.audit.follow import TrailFollower
    from appliance.audit.log import record
    from appliance.db import session_scope

    follower = TrailFollower(settings, engine)
    start = time.perf_counter()
    follower.start()
    started = time.perf_counter() - start
    assert follower.problem is None, follower.problem
    print(f"gateway start over {follower.size:,} events (verified whole, anchors read, decisions kept): "
          f"{started:.2f} s  (target < 15 s for 1,000,000)")
    per_round = []
    for i in range(300):  # one event, then one round of following, as a gateway's sync sees them one by one
        with session_scope(engine) as s:
            record(ctx, s, event(10_000_000 + i))
        t0 = time.perf_counter()
        assert follower.follow() == 1, follower.problem
        per_round.append((time.perf_counter() - t0) * 1000)
    for i in range(1000):
        with session_scope(engine) as s:
            record(ctx, s, event(20_000_000 + i))
    t0 = time.perf_counter()
    assert follower.follow() == 1000, follower.problem
    batch_ms = (time.perf_counter() - t0) * 1000
    print(f"gateway follow, a new event each round: median {statistics.median(per_round):.2f} ms, max "
          f"{max(per_round):.2f} ms; 1,000 new events in one round: {batch_ms / 1000:.3f} ms an event "
          f"(target < 1 ms a new event)")


def _signed_approval(tmp: Path, ctx) -> None:
    """An officer's decision signed with her personal key (decrypted each time, as each command does), checked
    against the pinned keys, beside the same decision's audit append alone."""
    import dataclasses

    from appliance.artifacts import decisions
    from appliance.audit.events import Event
    from appliance.audit.log import record
    from appliance.context import Actor
    from appliance.db import session_scope
    from appliance.keys import enrolment
    from appliance.keys.personal import LocalPersonalKeys

    (tmp / "personal-pass").write_text("benchmark personal passphrase\n")
    env = {"APPLIANCE_PERSONAL_KEYS": str(tmp / "personal"),
           "APPLIANCE_PERSONAL_PASSPHRASE_FILE": str(tmp / "personal-pass")}
    officer = ctx.acting_as(Actor("oscar", "officer", "session"))
    entry = enrolment.enroll(dataclasses.replace(officer, personal=LocalPersonalKeys(env, ["keys", "enroll"])))
    enrolment.pin(officer.settings, officer.engine, entry.key_id)
    signing = dataclasses.replace(officer, personal=LocalPersonalKeys(env, ["approve", "triage", "--reason", "ok"]))
    signed_ms, plain_ms = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        statement = decisions.signed(signing, "approve", "triage", "ab" * 32, "ok")
        with session_scope(officer.engine) as s:
            record(officer, s, Event("artifact.approve", "artifact", "triage", object_sha256="ab" * 32,
                                     details={"statement": statement}))
        signed_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        with session_scope(officer.engine) as s:
            record(officer, s, Event("artifact.approve", "artifact", "triage", object_sha256="ab" * 32))
        plain_ms.append((time.perf_counter() - t0) * 1000)
    print(f"approval signed with the officer's personal key and recorded: median {statistics.median(signed_ms):.1f} "
          f"ms (the record alone: {statistics.median(plain_ms):.1f} ms)")


if __name__ == "__main__":
    main()
