"""Separation of duties at release: the four-eyes rules an approval must pass, and the policy history a
release must come from. Each rule reads the audit trail, which records who did what and from which OS account.

Four eyes, by rule:
- account: the approver trained the run, packaged or signed the artifact;
- appointed: the approver's account was created, reset or given its role by one of those people;
- appointed-by-self: the approver's account was created, reset or given its role from the same OS account (as the
  kernel reported it) as the approval comes from: the admin's puppet officer;
- os-account: the approval comes from the same OS account (uid, as the kernel reported it on the control
  socket) as the training, packaging or signing: one person holding two appliance accounts.
  In-process use (the home's own account, a developer's machine) has no kernel-reported uid to compare; the
  approval event says the rule did not apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from appliance.artifacts.registry import Artifact
from appliance.context import PEER, Context
from appliance.db.tables import audit_event
from appliance.train.runs import Run

_APPOINTING = ("user.create", "user.set_role", "user.reset_password", "user.bind")


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str


def _makers(ctx: Context, run: Run, artifact: Artifact) -> list[tuple[str, str, int | None, str | None]]:
    """(what, appliance user, os uid, os source) of the training, packaging and signing events."""
    with ctx.engine.connect() as conn:
        e = audit_event.c
        rows = conn.execute(select(e.action, e.actor, e.os_uid, e.os_source).where(e.outcome == "ok", or_(
            and_(e.object_type == "run", e.object_id == run.name, e.action.in_(("train.queue", "train.start"))),
            and_(e.object_type == "artifact", e.object_id == artifact.name,
                 e.action.in_(("artifact.package", "artifact.sign"))))).order_by(e.seq)).all()
    words = {"train.queue": "trained the run", "train.start": "trained the run",
             "artifact.package": "packaged the artifact", "artifact.sign": "signed the artifact"}
    return [(words[r[0]], r[1], None if r[2] is None else int(r[2]), r[3]) for r in rows]


_ORDER = ("trained the run", "packaged the artifact", "signed the artifact")


def _in_order(deeds: set[str]) -> list[str]:
    return [d for d in _ORDER if d in deeds]


def four_eyes(ctx: Context, run: Run, artifact: Artifact) -> tuple[Refusal | None, dict]:
    """The first four-eyes rule this approval breaks (or None), and what was checked, for the audit event."""
    me = ctx.actor.user
    makers = {run.created_by: "trained the run", artifact.packaged_by: "packaged the artifact"}
    if artifact.signed_by:
        makers.setdefault(artifact.signed_by, "signed the artifact")
    events = _makers(ctx, run, artifact)
    people = {user for _, user, _, _ in events if user not in ("worker", "system")} | set(makers)
    did = _in_order({what for what, user, _, _ in events if user == me} | ({makers[me]} if me in makers else set()))
    if did:
        return Refusal("account", f"{me} {' and '.join(did)}"), {}
    with ctx.engine.connect() as conn:
        e = audit_event.c
        appointed = conn.execute(select(e.action, e.actor, e.os_uid, e.os_source).where(
            e.object_type == "user", e.object_id == me, e.outcome == "ok", e.action.in_(_APPOINTING)
        ).order_by(e.seq)).all()
    by = sorted({(a, who) for a, who, _, _ in appointed if who in people and a != "user.bind"})
    if by:
        words = {"user.create": "created", "user.set_role": "gave its role to", "user.reset_password": "reset"}
        detail = "; ".join(f"{who} {words[a]} the account {me}" for a, who in by)
        return Refusal("appointed", f"{detail}, and {by[0][1]} made this artifact"), {}
    if ctx.os.source != PEER:
        return None, {"os_account_rule": "not applicable: approved in-process by the home's own account"}
    words = {"user.create": "created", "user.set_role": "given its role", "user.reset_password": "reset"}
    selves = [(a, who) for a, who, uid, source in appointed
              if a != "user.bind" and source == PEER and uid is not None and int(uid) == ctx.os.uid]
    if selves:
        action, who = selves[0]
        return Refusal("appointed-by-self", f"the account {me} was {words[action]} by {who} from OS account "
                                            f"{ctx.os.name} (uid {ctx.os.uid}), the one this approval comes from"), {}
    same = _in_order({what for what, _, uid, _ in events if uid == ctx.os.uid})
    if same:
        return Refusal("os-account", f"OS account {ctx.os.name} (uid {ctx.os.uid}) also {' and '.join(same)}"), {}
    return None, {"os_account_rule": f"checked: {ctx.os.name} (uid {ctx.os.uid}) made no part of it"}


def recorded_policies(ctx: Context, run: Run, eval_policy_digest: str | None) -> dict[str, str | None]:
    """{policy: digest} this artifact was made under: the dataset's scrub, the run's training, the evaluation's
    release policy."""
    from appliance.data import versions

    dataset = versions.get_version(ctx.engine, run.dataset_ref)
    return {"pii": dataset.policy_digest, "training": run.policy_digest, "release": eval_policy_digest}
