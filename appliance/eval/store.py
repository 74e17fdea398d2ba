"""Stored evaluations (table `eval_result`, declared in `db/tables.py`): one row per `appliance eval`, its result
JSON, and the officer's override."""

from __future__ import annotations

import json

from sqlalchemy import insert as sql_insert
from sqlalchemy import select, update

from appliance.db.tables import eval_result as t
from appliance.errors import NotFound
from appliance.eval.result import EvalResult


def insert(conn, evaluation: EvalResult) -> None:
    values = {c.name: getattr(evaluation, c.name) for c in t.c}
    values["result"] = json.dumps(evaluation.result, sort_keys=True)
    values["passed"] = int(evaluation.passed)
    conn.execute(sql_insert(t).values(values))


def set_override(conn, eval_id: str, by: str, reason: str, at: str) -> None:
    conn.execute(update(t).where(t.c.id == eval_id).values(override_by=by, override_reason=reason, override_at=at))


def _result(row) -> EvalResult:
    values = dict(row._mapping)
    values["result"] = json.loads(values["result"])
    values["passed"] = bool(values["passed"])
    return EvalResult(**values)


def latest(engine, run_name: str) -> EvalResult:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.run_name == run_name)
                           .order_by(t.c.created_at.desc(), t.c.id.desc()).limit(1)).first()
    if row is None:
        raise NotFound(f"run {run_name!r} has not been evaluated; run `appliance eval {run_name}`")
    return _result(row)


def get_result(engine, eval_id: str) -> EvalResult:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == eval_id)).first()
    if row is None:
        raise NotFound(f"no evaluation {eval_id}")
    return _result(row)


def list_results(engine) -> list[EvalResult]:
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.created_at, t.c.id)).all()
    return [_result(r) for r in rows]
