"""Stored evaluations (table `eval_result`): one row per `appliance eval`, its result JSON, and the officer's
override. The one place that names the table's columns."""

from __future__ import annotations

import json

from sqlalchemy import text

from appliance.errors import NotFound
from appliance.eval.result import EvalResult

COLUMNS = ("id", "run_id", "run_name", "created_at", "created_by", "adapter_digest", "policy_digest", "suite_digest",
           "judge_model", "passed", "result", "report_path", "override_by", "override_reason", "override_at")


def insert(conn, evaluation: EvalResult) -> None:
    values = {k: getattr(evaluation, k) for k in COLUMNS}
    values["result"] = json.dumps(evaluation.result, sort_keys=True)
    values["passed"] = int(evaluation.passed)
    conn.execute(text(f"INSERT INTO eval_result ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"),
                 values)


def set_override(conn, eval_id: str, by: str, reason: str, at: str) -> None:
    conn.execute(text("UPDATE eval_result SET override_by = :u, override_reason = :r, override_at = :t WHERE id = :id"),
                 {"u": by, "r": reason, "t": at, "id": eval_id})


def _result(row) -> EvalResult:
    values = dict(zip(COLUMNS, row, strict=True))
    values["result"] = json.loads(values["result"])
    values["passed"] = bool(values["passed"])
    return EvalResult(**values)


def latest(engine, run_name: str) -> EvalResult:
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM eval_result WHERE run_name = :n "
                                "ORDER BY created_at DESC, id DESC LIMIT 1"), {"n": run_name}).first()
    if row is None:
        raise NotFound(f"run {run_name!r} has not been evaluated; run `appliance eval {run_name}`")
    return _result(row)


def get_result(engine, eval_id: str) -> EvalResult:
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM eval_result WHERE id = :i"), {"i": eval_id}).first()
    if row is None:
        raise NotFound(f"no evaluation {eval_id}")
    return _result(row)


def list_results(engine) -> list[EvalResult]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM eval_result ORDER BY created_at, id")).all()
    return [_result(r) for r in rows]
