"""An officer releases a run whose latest evaluation failed its gates, with a written reason (audited)."""

from __future__ import annotations

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.context import Context
from appliance.db import session_scope
from appliance.errors import InputError
from appliance.eval import store
from appliance.eval.result import EvalResult
from appliance.identity.roles import require
from appliance.train import runs


def override(ctx: Context, run_name: str, reason: str) -> EvalResult:
    require(ctx, "eval.override", "run", run_name)
    reason = reason.strip()
    if len(reason) < 10:
        raise InputError("--reason: write why the failed gates are acceptable (at least 10 characters)")
    current = store.latest(ctx.engine, run_name)
    if current.passed:
        raise InputError(f"run {run_name!r} passed its gates; there is nothing to override")
    from appliance.artifacts.decisions import signed
    from appliance.audit.log import record_alone
    from appliance.errors import PermissionDenied

    try:
        statement = signed(ctx, "override", run_name, current.adapter_digest, reason)  # the officer's own key
    except PermissionDenied as exc:
        record_alone(ctx, Event("eval.override", "run", run_name, outcome="denied", reason=str(exc),
                                details={"rule": "signed-decision"}))
        raise
    with session_scope(ctx.engine) as s:
        store.set_override(s.connection(), current.id, ctx.actor.user, reason, runs.now())
        record(ctx, s, Event("eval.override", "run", run_name, object_sha256=current.adapter_digest, reason=reason,
                             details={"eval_id": current.id, "failed_gates": current.failed_gates,
                                      "statement": statement}))
    return store.latest(ctx.engine, run_name)
