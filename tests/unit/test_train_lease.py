"""Training leases on both database backends: who holds a run, the heartbeat, and the reaping of a run whose
trainer process is gone (a real process that has ended, not a made-up pid)."""

import subprocess
import sys
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from appliance.db import session_scope
from appliance.db.tables import audit_event
from appliance.train import lease, runs
from tests.unit.test_database import queued_run

pytestmark = pytest.mark.unit


def _ended_process() -> lease.Holder:
    """The holder string of a process that ran here and has exited."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    started = round(psutil.Process(proc.pid).create_time(), 2)
    proc.wait()
    return lease.Holder(lease.Holder.me().host, proc.pid, started)


def _running(ctx, name: str, holder, heartbeat_at: str | None = None) -> runs.Run:
    run = replace(queued_run(name, "2026-01-01T00:00:00+00:00"), status="running", lease_owner=holder and str(holder),
                  heartbeat_at=heartbeat_at or runs.now(), steps_done=3)
    with session_scope(ctx.engine) as s:
        runs.insert(s.connection(), run)
    return runs.get_run(ctx.engine, name)


def _fail_events(ctx) -> list[tuple]:
    e = audit_event.c
    with ctx.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(e.object_id, e.outcome, e.reason)
                                               .where(e.action == "train.fail").order_by(e.seq))]


@pytest.mark.parametrize("holder, age, alive, why", [
    ("me", 0, True, "trains it, last heartbeat"),
    ("ended", 0, False, "has ended without recording an outcome"),
    ("reused pid", 0, False, "has ended without recording an outcome"),
    ("elsewhere", 5, True, "on another-host trains it"),
    ("elsewhere", 600, False, "no heartbeat from its trainer, process 4242 on another-host, for 60"),
    ("me", 600, False, "no heartbeat"),
    (None, 0, False, "no trainer holds it"),
])
def test_a_lease_is_alive_only_while_its_process_lives_and_beats(ctx, holder, age, alive, why):
    from datetime import UTC, datetime, timedelta

    me = lease.Holder.me()
    holders = {"me": me, "ended": _ended_process(), "reused pid": replace(me, started=me.started - 100),
               "elsewhere": lease.Holder("another-host", 4242, 1.0), None: None}
    beat = (datetime.now(UTC) - timedelta(seconds=age)).isoformat(timespec="seconds")
    found, reason = lease.state(_running(ctx, "r", holders[holder], beat))
    assert found is alive and why in reason, reason


def test_a_run_whose_trainer_ended_is_marked_failed_once_with_the_cause_and_a_live_one_is_left(ctx):
    dead = _running(ctx, "killed", _ended_process())
    _running(ctx, "live", lease.Holder.me())
    reaped = lease.reap_stale(ctx)
    assert [name for name, _ in reaped] == ["killed"]
    gone = runs.get_run(ctx.engine, "killed")
    assert gone.status == "failed" and gone.lease_owner is None and gone.finished_at
    assert gone.error.startswith("trainer gone: its trainer, process ") and "(killed, or out of memory)" in gone.error
    assert runs.get_run(ctx.engine, "live").status == "running"
    assert lease.reap_stale(ctx) == []  # nothing twice
    assert _fail_events(ctx) == [("killed", "error", gone.error)]
    assert not lease.reap(ctx, dead, "a stale read of the record")  # the record changed since it was read


def test_only_one_process_takes_a_failed_run_and_a_held_one_is_not_taken(ctx):
    run = _running(ctx, "r", _ended_process())
    lease.reap_stale(ctx)
    first, second = lease.Holder("h", 1, 1.0), lease.Holder("h", 2, 1.0)
    assert lease.take(ctx.engine, run.id, first, ("failed", "interrupted"))
    assert not lease.take(ctx.engine, run.id, second, ("failed", "interrupted"))
    assert lease.take(ctx.engine, run.id, first, ("failed", "interrupted"))  # its holder may take it again
    assert runs.get_run(ctx.engine, "r").lease_owner == str(first)


def test_the_heartbeat_renews_the_lease_and_says_when_it_was_lost(ctx):
    me = lease.Holder.me()
    run = _running(ctx, "r", me, heartbeat_at="2026-01-01T00:00:00+00:00")
    with lease.Heartbeat(ctx.engine, run.id, me, every=0.05) as beat:
        deadline = time.monotonic() + 10
        while runs.get_run(ctx.engine, "r").heartbeat_at.startswith("2026-01-01") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not runs.get_run(ctx.engine, "r").heartbeat_at.startswith("2026-01-01")
        beat.check()  # still held
        with session_scope(ctx.engine) as s:  # another process decided it is gone
            runs.update(s.connection(), run.id, status="failed", lease_owner=None)
        while beat.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(lease.LeaseLost, match="no longer held by this process"):
            beat.check()
