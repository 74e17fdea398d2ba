"""Roles and what each may do: the separation of duties. Checked in the library, so the CLI and the console
enforce the same rules; every refusal is an audit event.

The admin manages people, keys, policies and backups; it never trains, packages, signs or approves. The
engineer builds adapters; the officer approves them and owns the audit trail; a user only queries.
`docs/roles.md` is generated from `PERMISSIONS` (`table()`).
"""

from __future__ import annotations

from appliance.audit.events import Event
from appliance.audit.log import record_alone
from appliance.context import Context
from appliance.errors import PermissionDenied

# What each permission lets a role do, in the words of docs/roles.md.
ACTIONS: dict[str, str] = {
    "read": "read models, datasets, runs, evaluations and artifacts",
    "serve.query": "query served models (gateway, `chat`)",
    "tokens.own": "create, list and revoke API tokens for oneself",
    "password.change": "change one's own password",
    "models.import": "import base models",
    "data.ingest": "ingest and lint datasets",
    "train": "train adapters",
    "eval": "evaluate runs, run `advise`",
    "eval.scheduled": "re-check approved adapters (drift)",
    "package": "package evaluated runs",
    "sign": "sign packaged artifacts",
    "artifacts.approve": "approve, reject and revoke artifacts",
    "eval.override": "override failed release gates, with a reason",
    "audit.read": "read the audit trail",
    "audit.verify": "verify the audit trail",
    "audit.export": "export the evidence pack",
    "audit.checkpoint": "sign an audit checkpoint",
    "users.manage": "add users, disable them, change roles, reset passwords",
    "tokens.manage": "gateway tokens for anyone; control tokens for service accounts of role user",
    "keys.manage": "create, rotate and revoke signing keys",
    "keys.enroll": "enrol one's own personal signing key (root pins it)",
    "backup": "back up the appliance",
}

_PERSON = frozenset({"tokens.own", "password.change"})
_AUDIT = frozenset({"audit.read", "audit.verify", "audit.export", "audit.checkpoint"})

PERMISSIONS: dict[str, frozenset[str]] = {
    # people, keys, policies (installed by root), backups; never the pipeline's train, package, sign, approve
    "admin": _PERSON | _AUDIT | {"read", "serve.query", "models.import", "users.manage", "tokens.manage",
                                 "keys.manage", "backup"},
    # builds adapters; never approves
    "engineer": _PERSON | {"read", "serve.query", "models.import", "data.ingest", "train", "eval",
                           "eval.scheduled", "package", "sign", "keys.enroll"},
    # reads everything, approves and revokes, owns the audit trail; cannot ingest, train or sign
    "officer": _PERSON | _AUDIT | {"read", "serve.query", "artifacts.approve", "eval.override", "keys.enroll"},
    # queries served models only
    "user": _PERSON | {"serve.query"},
    # the appliance itself, acting before any user exists (bootstrap) or on a schedule
    "system": frozenset({"models.import", "keys.manage", "users.manage", "audit.checkpoint", "read",
                         "eval.scheduled"}),
}
ROLES = ("admin", "engineer", "officer", "user")


def allowed(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def require(ctx: Context, permission: str, object_type: str, object_id: str) -> None:
    """Raise PermissionDenied, after writing the denial to the audit trail, unless the actor may do this.

    An actor whose password was set by someone else may do nothing but change it."""
    actor = ctx.actor
    if actor.must_change_password and permission != "password.change":
        reason = "the password was set by someone else and must be changed first"
        record_alone(ctx, Event(permission, object_type, object_id, outcome="denied", reason=reason))
        raise PermissionDenied(f"{actor.user}: {reason}", hint="passwd")
    if allowed(actor.role, permission):
        return
    reason = f"role {actor.role} lacks permission {permission}"
    record_alone(ctx, Event(f"{permission}", object_type, object_id, outcome="denied", reason=reason))
    raise PermissionDenied(f"{actor.user} ({actor.role}) may not {permission.replace('.', ' ')}: {reason}")


def table() -> str:
    """The role x action table of docs/roles.md, from PERMISSIONS."""
    lines = ["| action | permission | " + " | ".join(ROLES) + " |", "| --- | --- |" + " :---: |" * len(ROLES)]
    for permission, words in ACTIONS.items():
        marks = " | ".join("yes" if allowed(role, permission) else "-" for role in ROLES)
        lines.append(f"| {words} | `{permission}` | {marks} |")
    return "\n".join(lines)
