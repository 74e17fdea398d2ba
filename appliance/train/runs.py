"""Training run records and their per-step metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text

from appliance.db.engine import writing
from appliance.errors import NotFound

_COLUMNS = ("id", "name", "status", "method", "engine", "engine_reason", "recipe_file", "recipe_digest", "recipe",
            "base_model", "base_digest", "dataset_ref", "dataset_digest", "seed", "max_steps", "steps_done",
            "final_loss", "path", "environment", "error", "created_by", "created_at", "started_at", "finished_at",
            "policy_digest", "lease_owner", "heartbeat_at")


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    status: str  # queued, running, succeeded, failed, interrupted
    method: str
    engine: str
    engine_reason: str
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
        return {k: getattr(self, k) for k in _COLUMNS}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _run(row) -> Run:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["recipe"] = json.loads(values["recipe"])
    values["environment"] = json.loads(values["environment"])
    return Run(**values)


def insert(conn, run: Run) -> None:
    values = run.as_dict()
    values["recipe"] = json.dumps(values["recipe"], sort_keys=True)
    values["environment"] = json.dumps(values["environment"], sort_keys=True)
    conn.execute(text(f"INSERT INTO training_run ({', '.join(_COLUMNS)}) VALUES "
                      f"({', '.join(':' + c for c in _COLUMNS)})"), values)


def update(conn, run_id: str, **fields) -> None:
    sets = ", ".join(f"{k} = :{k}" for k in fields)
    conn.execute(text(f"UPDATE training_run SET {sets} WHERE id = :id"), {**fields, "id": run_id})


def get_run(engine, name: str) -> Run:
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {', '.join(_COLUMNS)} FROM training_run WHERE name = :n"), {"n": name}).first()
    if row is None:
        raise NotFound(f"no run named {name!r}", hint="runs.list")
    return _run(row)


def list_runs(engine, status: str | None = None) -> list[Run]:
    """Every run, or only those in `status`."""
    where = " WHERE status = :s" if status else ""
    with engine.connect() as conn:
        return [_run(r) for r in conn.execute(text(
            f"SELECT {', '.join(_COLUMNS)} FROM training_run{where} ORDER BY created_at, name"), {"s": status}).all()]


def name_taken(engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM training_run WHERE name = :n"), {"n": name}).first() is not None


def metrics(engine, run_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT step, loss, learning_rate, tokens_per_second, ts FROM run_metric "
                                 "WHERE run_id = :r ORDER BY step"), {"r": run_id}).all()
    return [dict(zip(("step", "loss", "learning_rate", "tokens_per_second", "ts"), r, strict=True)) for r in rows]


def add_metric(conn, run_id: str, step: int, loss, lr, tps) -> None:
    conn.execute(text("INSERT INTO run_metric (run_id, step, loss, learning_rate, tokens_per_second, ts) "
                      "VALUES (:r, :s, :l, :lr, :t, :ts)"),
                 {"r": run_id, "s": step, "l": loss, "lr": lr, "t": tps, "ts": now()})


def drop_metrics_after(conn, run_id: str, step: int) -> None:
    conn.execute(text("DELETE FROM run_metric WHERE run_id = :r AND step > :s"), {"r": run_id, "s": step})


def claim_next(engine, holder: str) -> Run | None:
    """Mark the oldest queued run as running, held by `holder` (`lease.Holder`), and return it; a conditional
    UPDATE decides between workers."""
    while True:
        with writing(engine).begin() as conn:
            row = conn.execute(text("SELECT name FROM training_run WHERE status = 'queued' "
                                    "ORDER BY created_at, name LIMIT 1")).first()
            if row is None:
                return None
            claimed = conn.execute(text("UPDATE training_run SET status = 'running', started_at = :t, "
                                        "lease_owner = :o, heartbeat_at = :t WHERE name = :n AND status = 'queued'"),
                                   {"t": now(), "n": row[0], "o": holder})
            if claimed.rowcount != 1:
                continue  # another worker took it first
        return get_run(engine, row[0])
