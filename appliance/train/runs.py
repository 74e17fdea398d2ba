"""Training run records and their per-step metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy import insert as sql_insert
from sqlalchemy import update as sql_update

from appliance.db.engine import writing
from appliance.db.tables import run_metric
from appliance.db.tables import training_run as t
from appliance.errors import NotFound


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    status: str  # queued, running, succeeded, failed, interrupted
    method: str
    framework: str  # unsloth or trl (`frameworks.choose`)
    framework_reason: str
    recipe_file: str
    recipe_digest: str
    recipe: dict
    base_model: str
    base_digest: str
    dataset_ref: str
    dataset_digest: str
    seed: int
    max_steps: int
    steps_done: int
    final_loss: float | None
    path: str
    environment: dict
    error: str | None
    created_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    policy_digest: str | None = None  # the installed training policy it was checked against
    lease_owner: str | None = None  # the process training it now: host/pid/start time (`lease`)
    heartbeat_at: str | None = None  # that process's last heartbeat

    def as_dict(self) -> dict:
        return {c.name: getattr(self, c.name) for c in t.c}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _run(row) -> Run:
    values = dict(row._mapping)
    values["recipe"] = json.loads(values["recipe"])
    values["environment"] = json.loads(values["environment"])
    return Run(**values)


def insert(conn, run: Run) -> None:
    values = run.as_dict()
    values["recipe"] = json.dumps(values["recipe"], sort_keys=True)
    values["environment"] = json.dumps(values["environment"], sort_keys=True)
    conn.execute(sql_insert(t).values(values))


def update(conn, run_id: str, only_from: tuple[str, ...] | None = None, **fields) -> bool:
    """Set `fields` of a run; with `only_from`, only while its status is one of those (False when it was not)."""
    query = sql_update(t).where(t.c.id == run_id)
    if only_from is not None:
        query = query.where(t.c.status.in_(only_from))
    return conn.execute(query.values(**fields)).rowcount == 1


def get_run(engine, name: str) -> Run:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.name == name)).first()
    if row is None:
        raise NotFound(f"no run named {name!r}", hint="runs.list")
    return _run(row)


def list_runs(engine, status: str | None = None) -> list[Run]:
    """Every run, or only those in `status`."""
    query = select(t).order_by(t.c.created_at, t.c.name)
    if status:
        query = query.where(t.c.status == status)
    with engine.connect() as conn:
        return [_run(r) for r in conn.execute(query).all()]


def name_taken(engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(t.c.id).where(t.c.name == name)).first() is not None


def metrics(engine, run_id: str) -> list[dict]:
    with engine.connect() as conn:
        m = run_metric.c
        rows = conn.execute(select(m.step, m.loss, m.learning_rate, m.tokens_per_second, m.ts)
                            .where(m.run_id == run_id).order_by(m.step)).all()
    return [dict(r._mapping) for r in rows]


def add_metric(conn, run_id: str, step: int, loss, lr, tps) -> None:
    conn.execute(sql_insert(run_metric).values(run_id=run_id, step=step, loss=loss, learning_rate=lr,
                                               tokens_per_second=tps, ts=now()))


def drop_metrics_after(conn, run_id: str, step: int) -> None:
    conn.execute(delete(run_metric).where(run_metric.c.run_id == run_id, run_metric.c.step > step))


def claim_next(engine, holder: str) -> Run | None:
    """Mark the oldest queued run as running, held by `holder` (`lease.Holder`), and return it; a conditional
    UPDATE decides between workers."""
    while True:
        with writing(engine).begin() as conn:
            row = conn.execute(select(t.c.name).where(t.c.status == "queued")
                               .order_by(t.c.created_at, t.c.name).limit(1)).first()
            if row is None:
                return None
            stamp = now()
            claimed = conn.execute(sql_update(t).where(t.c.name == row[0], t.c.status == "queued")
                                   .values(status="running", started_at=stamp, lease_owner=holder, heartbeat_at=stamp))
            if claimed.rowcount != 1:
                continue  # another worker took it first
        return get_run(engine, row[0])
