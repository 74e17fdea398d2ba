"""Console sign-in: the appliance's users and passwords (Argon2id, lockout after failures, every outcome
audited, as `appliance login`), a session per browser tab that expires after the identity section's
`session_hours`, and the user re-read from the database on every page so a disabled user or a changed role
takes effect at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from appliance.audit.events import Event
from appliance.audit.log import record_alone
from appliance.context import Actor, Context
from appliance.errors import NotFound
from appliance.identity.users import authenticate, get_user


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    user: str
    expires_at: datetime
    started_at: datetime | None = None


def sign_in(ctx: Context, name: str, password: str) -> ConsoleSession:
    """Check the password (PermissionDenied on failure, lockout included) and audit the login."""
    user = authenticate(ctx, name.strip(), password)
    now = datetime.now(UTC)
    session = ConsoleSession(uuid.uuid4().hex, user.name,
                             now + timedelta(hours=ctx.settings.file.identity.session_hours), now)
    record_alone(ctx, Event("user.login", "user", user.name,
                            details={"session": session.id, "via": "console",
                                     "expires_at": session.expires_at.isoformat(timespec="seconds"),
                                     "one_time": user.must_change_password}),
                 user.actor("console"))
    return session


def actor_of(ctx: Context, session: ConsoleSession) -> tuple[Actor | None, str]:
    """The session's actor as the database says now, or None and why the session ended."""
    if datetime.now(UTC) >= session.expires_at:
        return None, "Your session expired; sign in again."
    try:
        user = get_user(ctx.engine, session.user)
    except NotFound:
        return None, "Your user no longer exists."
    if user.disabled:
        return None, f"User {user.name} is disabled."
    changed = datetime.fromisoformat(user.password_changed_at) if user.password_changed_at else None
    if changed and session.started_at and changed > session.started_at.replace(microsecond=0):
        return None, "Your password was changed; sign in again."  # as `passwd` ends the command line's sessions
    return user.actor("console"), ""


def renewed(session: ConsoleSession) -> ConsoleSession:
    """The session that changed its own password, going on after the change."""
    import dataclasses

    return dataclasses.replace(session, started_at=datetime.now(UTC))


def change_password(ctx: Context, old: str, new: str, confirm: str):
    """The signed-in user's own password (the console's `appliance passwd`)."""
    from appliance.errors import InputError
    from appliance.identity.users import change_password as change

    if new != confirm:
        raise InputError("the two new passwords differ", param="new_password")
    return change(ctx, old, new)


def sign_out(ctx: Context, session: ConsoleSession, actor: Actor) -> None:
    record_alone(ctx, Event("user.logout", "user", session.user, details={"session": session.id, "via": "console"}),
                 actor)
