"""Approval: packaged -> signed -> approved | rejected; approved -> revoked. Only an officer decides, under the
four-eyes rules of `duties.py` (not the trainer, packager or signer; not someone they appointed; not the same
OS account), and approval needs a verified signature, a passed (or officer-overridden) evaluation and policy
digests the installed history admits. Every decision is signed by the officer's own personal key
(`decisions.py`), and the signed statement goes into its audit event: the gateway serves on the statement, never
on the status column. Every transition and every refusal is an audit event naming the rule."""

from __future__ import annotations

from appliance import policies
from appliance.artifacts import decisions, duties, registry
from appliance.artifacts.signing import verify
from appliance.audit.events import Event
from appliance.audit.log import record, record_alone, sign_if_due
from appliance.context import Context
from appliance.db import session_scope
from appliance.errors import InputError, PermissionDenied, PolicyViolation
from appliance.eval import store as evaluation
from appliance.identity.roles import require
from appliance.train import runs

_FROM = {"approve": ("signed",), "reject": ("packaged", "signed"), "revoke": ("approved",)}
_TO = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}


def _refuse(ctx: Context, action: str, name: str, error: Exception, rule: str | None = None) -> None:
    record_alone(ctx, Event(f"artifact.{action}", "artifact", name, outcome="denied", reason=str(error),
                            details={"rule": rule} if rule else {}))
    raise error


def command_for(name: str, action: str, reason: str) -> str:
    """The command line an officer runs to make this decision with their own key (what the console prepares)."""
    import shlex

    return shlex.join(["appliance", action, name, "--reason", reason.strip()])


def decide(ctx: Context, ref: str, action: str, reason: str, *, prepare: bool = False) -> registry.Artifact:
    """Make the decision (signed by the officer's own key), or with `prepare` only run every check it needs: the
    console's way, since only the officer's own process holds their key."""
    require(ctx, "artifacts.approve", "artifact", ref)
    artifact = registry.get(ctx.engine, ctx.settings, ref)
    reason = reason.strip()
    if len(reason) < 10:
        raise InputError("write why (at least 10 characters); it is kept in the audit trail", param="reason")
    if artifact.status not in _FROM[action]:
        raise InputError(f"artifact {artifact.name!r} is {artifact.status}; {action} applies to "
                         f"{' or '.join(_FROM[action])} artifacts")
    run = runs.get_run(ctx.engine, artifact.run_name)
    checked_rules: dict = {}
    if action == "approve":
        refusal, checked_rules = duties.four_eyes(ctx, run, artifact)
        if refusal:
            _refuse(ctx, action, artifact.name, PermissionDenied(
                f"four-eyes rule ({refusal.rule}): {refusal.reason}; {ctx.actor.user} may not approve it"),
                rule=f"four-eyes:{refusal.rule}")
        checked = verify(ctx, artifact.name)
        if not checked.ok:
            failed = "; ".join(c["detail"] for c in checked.checks if not c["ok"])
            _refuse(ctx, action, artifact.name, PolicyViolation(f"artifact {artifact.name!r} does not verify: "
                                                                f"{failed}"))
        ev = evaluation.latest(ctx.engine, run.name)
        if ev.id != artifact.eval_id and not ev.releasable:
            _refuse(ctx, action, artifact.name, PolicyViolation(
                f"run {run.name!r} was evaluated again since packaging and failed its gates"))
        packaged_eval = evaluation.get_result(ctx.engine, artifact.eval_id)
        if not packaged_eval.releasable:
            _refuse(ctx, action, artifact.name, PolicyViolation(
                f"run {run.name!r} failed release gates ({', '.join(packaged_eval.failed_gates)}); override them first",
                hint="evals.override"))
        problems = policies.unadmitted(ctx.engine, duties.recorded_policies(ctx, run, packaged_eval.policy_digest))
        if problems:
            _refuse(ctx, action, artifact.name, PolicyViolation(
                f"artifact {artifact.name!r} was not made under installed policies: {'; '.join(problems)}",
                hint="policies"), rule="installed-policies")
    if prepare:
        return artifact
    try:  # the officer's own key signs the decision, in their own process; only that counts at serving
        statement = decisions.signed(ctx, action, artifact.name, artifact.manifest_digest, reason)
    except PermissionDenied as exc:
        _refuse(ctx, action, artifact.name, exc, rule="signed-decision")
    with session_scope(ctx.engine) as s:
        registry.update(s.connection(), artifact.id, artifact.status, status=_TO[action], decided_by=ctx.actor.user,
                        decided_at=runs.now(), decision_reason=reason)
        record(ctx, s, Event(f"artifact.{action}", "artifact", artifact.name, object_sha256=artifact.manifest_digest,
                             reason=reason, details={"from": artifact.status, "to": _TO[action], **checked_rules,
                                                     "statement": statement}))
    sign_if_due(ctx, force=True)  # a checkpoint over the decision now, where this process signs
    return registry.get(ctx.engine, ctx.settings, artifact.name)
