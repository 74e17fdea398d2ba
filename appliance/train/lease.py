"""Who trains a run right now: the trainer's lease on its run record, renewed by a heartbeat, and the reaping
of runs whose trainer is gone (kill -9, the OOM killer, a host that went down).

A run is `running` only while a process holds its lease: the record names the holder (host, pid and the
process's start time, so that a reused pid is not taken for it) and the time of its last heartbeat. On the
holder's own host a dead process is seen at once; from elsewhere, a heartbeat older than `EXPIRES_S` says it.
Every change of holder is a conditional UPDATE, so two processes never both take one run."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, update

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.db import session_scope
from appliance.db.engine import writing
from appliance.db.tables import training_run as t
from appliance.train import runs

HEARTBEAT_S = 10.0
EXPIRES_S = 90.0


class LeaseLost(RuntimeError):
    """This process no longer holds its run: another process marked the run failed (or took it)."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: float  # the process's start time (seconds since the epoch, two decimals)

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.started:.2f}"

    @classmethod
    def me(cls) -> Holder:
        import psutil

        return cls(socket.gethostname(), os.getpid(), round(psutil.Process().create_time(), 2))

    @classmethod
    def parse(cls, value: str | None) -> Holder | None:
        try:
            host, pid, started = (value or "").rsplit("/", 2)
            return cls(host, int(pid), float(started))
        except ValueError:
            return None

    def gone(self) -> bool | None:
        """True when this host is the holder's and its process has ended; None when that cannot be told here."""
        if self.host != socket.gethostname():
            return None
        import psutil

        try:
            return abs(psutil.Process(self.pid).create_time() - self.started) > 0.05  # a reused pid
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:  # not ours to inspect: the heartbeat decides
            return None


def _age(stamp: str | None) -> float | None:
    return None if not stamp else (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()


def state(run: runs.Run) -> tuple[bool, str]:
    """(alive, why) for a `running` run's lease."""
    holder, age = Holder.parse(run.lease_owner), _age(run.heartbeat_at)
    if holder is None or age is None:
        return False, "no trainer holds it (a run recorded before leases, or its record was changed)"
    beat = f"last heartbeat {run.heartbeat_at}"
    if holder.gone():
        return False, f"its trainer, process {holder.pid} on {holder.host}, has ended without recording an outcome " \
                      f"(killed, or out of memory); {beat}"
    if age > EXPIRES_S:
        return False, f"no heartbeat from its trainer, process {holder.pid} on {holder.host}, for {age:.0f} s " \
                      f"(over {EXPIRES_S:.0f} s); {beat}"
    return True, f"process {holder.pid} on {holder.host} trains it, {beat} ({max(age, 0):.0f} s ago)"


def reap(ctx, run: runs.Run, why: str) -> bool:
    """Mark a `running` run whose trainer is gone as failed, with a `train.fail` event naming the cause; False when
    its record changed meanwhile (a heartbeat, or another process reaped it first)."""
    with session_scope(ctx.engine) as s:
        changed = release(s.connection(), run, "failed", as_read=True, error=f"trainer gone: {why}"[:500])
        if changed:
            record(ctx, s, Event("train.fail", "run", run.name, outcome="error", reason=f"trainer gone: {why}"[:500],
                                 details={"lease_owner": run.lease_owner, "heartbeat_at": run.heartbeat_at,
                                          "steps_done": run.steps_done}))
    return changed


def release(conn, run: runs.Run, status: str, as_read: bool = False, **fields) -> bool:
    """Record a held run's outcome (`status`, `finished_at` and `fields`) and drop its lease, only while the holder
    `run` was read with still holds it (`as_read`: and its heartbeat is still the one read); False otherwise."""
    held = [t.c.id == run.id, t.c.status == "running", func.coalesce(t.c.lease_owner, "") == (run.lease_owner or "")]
    if as_read:
        held.append(func.coalesce(t.c.heartbeat_at, "") == (run.heartbeat_at or ""))
    return conn.execute(update(t).where(*held).values(
        status=status, finished_at=runs.now(), lease_owner=None, **fields)).rowcount == 1


def stale(running: list[runs.Run]) -> list[tuple[runs.Run, str]]:
    """Those of the `running` runs whose trainer is gone, with why."""
    return [(run, why) for run in running for alive, why in [state(run)] if not alive]


def reap_stale(ctx) -> list[tuple[str, str]]:
    """Reap every `running` run whose trainer is gone; (name, why) for each."""
    return [(run.name, why) for run, why in stale(runs.list_runs(ctx.engine, "running")) if reap(ctx, run, why)]


def take(engine, run_id: str, holder: Holder, statuses: tuple[str, ...]) -> bool:
    """Make `holder` the run's trainer when the run is in one of `statuses` or already held by `holder`."""
    mine = (t.c.status == "running") & (t.c.lease_owner == str(holder))
    with writing(engine).begin() as conn:
        return conn.execute(update(t).where(t.c.id == run_id, t.c.status.in_(statuses) | mine).values(
            status="running", error=None, lease_owner=str(holder), heartbeat_at=runs.now())).rowcount == 1


class Heartbeat:
    """Renews `holder`'s lease on a run every `HEARTBEAT_S` from a daemon thread; `lost` says why it stopped
    holding it (the trainer then stops at its next step: `LeaseCallback`)."""

    def __init__(self, engine, run_id: str, holder: Holder, every: float = HEARTBEAT_S) -> None:
        self.engine, self.run_id, self.holder, self.every = engine, run_id, holder, every
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with writing(self.engine).begin() as conn:
                    held = conn.execute(update(t).where(
                        t.c.id == self.run_id, t.c.status == "running", t.c.lease_owner == str(self.holder))
                        .values(heartbeat_at=runs.now())).rowcount == 1
            except Exception:  # the database is away for a moment: the next beat tries again
                continue
            if not held:
                self.lost = "the run is no longer held by this process (another process marked it failed)"
                return

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(self.lost)
