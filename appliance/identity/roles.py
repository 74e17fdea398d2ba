"""Roles and what each may do. Checked in the library, so the CLI and the console enforce the same rules;
every refusal is an audit event."""

from __future__ import annotations

from appliance.audit.events import Event
from appliance.audit.log import record_alone
from appliance.context import Context
from appliance.errors import PermissionDenied

_ENGINEERING = frozenset({"models.import", "data.ingest", "train", "eval", "eval.scheduled", "package", "sign",
                          "read", "serve.query"})
_AUDIT = frozenset({"audit.read", "audit.verify", "audit.export", "audit.checkpoint"})

PERMISSIONS: dict[str, frozenset[str]] = {
    # users, keys, settings; may also run the engineering pipeline, never approve
    "admin": _ENGINEERING | _AUDIT | {"users.manage", "tokens.manage", "keys.manage", "backup"},
    "engineer": _ENGINEERING,
    # reads everything, approves and revokes, owns the audit trail; cannot ingest or train
    "officer": frozenset({"read", "serve.query", "artifacts.approve", "eval.override"}) | _AUDIT,
    # queries served models only
    "user": frozenset({"serve.query"}),
    # the appliance itself, acting before any user exists (bootstrap) or on a schedule
    "system": frozenset({"models.import", "keys.manage", "users.manage", "audit.checkpoint", "read",
                         "eval.scheduled"}),
}
ROLES = ("admin", "engineer", "officer", "user")


def allowed(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def require(ctx: Context, permission: str, object_type: str, object_id: str) -> None:
    """Raise PermissionDenied, after writing the denial to the audit trail, unless the actor may do this."""
    if allowed(ctx.actor.role, permission):
        return
    reason = f"role {ctx.actor.role} lacks permission {permission}"
    record_alone(ctx, Event(f"{permission}", object_type, object_id, outcome="denied", reason=reason))
    raise PermissionDenied(f"{ctx.actor.user} ({ctx.actor.role}) may not {permission.replace('.', ' ')}: {reason}")
