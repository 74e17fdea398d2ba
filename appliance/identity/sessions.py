"""Login sessions, bound to the operating-system account that logged in, and resolving who is acting.

A session's secret lives only in a 0600 file in the person's own home (APPLIANCE_SESSION_FILE, default under
~/.local/state/appliance/); the database keeps its sha256, the OS uid it belongs to, an expiry and a revocation
time. A session presented from another OS account is refused, so a copied session file is worth nothing. The
file is read and written by the person's process: in-process directly (`FileSessionStore`), through the
control socket by the person's `appliance` client (`control/request.py`). An API token of control scope in
APPLIANCE_TOKEN is the alternative for automation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from appliance.audit.events import Event
from appliance.audit.log import record, record_alone
from appliance.context import Actor, Context
from appliance.db import session_scope
from appliance.db.tables import auth_session as t
from appliance.errors import PermissionDenied
from appliance.identity import tokens
from appliance.identity.session_file import FileSessionStore, SessionStore, session_path
from appliance.identity.users import authenticate, bind_os_account, user_by_id


def _now() -> datetime:
    return datetime.now(UTC)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def login(ctx: Context, store: SessionStore, name: str, password: str) -> tuple[Actor, str]:
    """Authenticate and keep a session for this OS account; returns the actor and the expiry time. An account
    whose password was set by someone else gets a session that can only change it (`appliance passwd`)."""
    user = bind_os_account(ctx, authenticate(ctx, name, password))
    secret = secrets.token_urlsafe(32)
    session_id = uuid.uuid4().hex
    now = _now()
    expires = (now + timedelta(hours=ctx.settings.file.identity.session_hours)).isoformat(timespec="seconds")
    actor = user.actor("password")
    with session_scope(ctx.engine) as s:
        s.execute(insert(t).values(id=session_id, user_id=user.id, secret_hash=secret_hash(secret), os_user=ctx.os.name,
                                   os_uid=ctx.os.uid, created_at=now.isoformat(timespec="seconds"), expires_at=expires))
        record(ctx, s, Event("user.login", "user", user.name, details={
            "session": session_id, "expires_at": expires, "one_time": user.must_change_password}),
            actor)
        store.write({"home": str(ctx.settings.home), "session": session_id, "secret": secret, "user": user.name})
    return actor, expires


def _session_row(engine, data: dict):
    with engine.connect() as conn:
        return conn.execute(select(t.c.secret_hash, t.c.expires_at, t.c.revoked_at, t.c.user_id, t.c.os_uid,
                                   t.c.os_user).where(t.c.id == str(data.get("session")))).first()


def current_actor(ctx: Context, store: SessionStore, token: str | None) -> Actor:
    """Who is acting: a control-scope API token if one is presented, else this OS account's session; refused
    otherwise (the caller audits the refusal)."""
    if token:
        user, _ = tokens.resolve(ctx.engine, token, scope=tokens.CONTROL, os_uid=ctx.os.uid)
        return user.actor("token")
    data = store.read()
    if not data:
        raise PermissionDenied("not logged in (or set APPLIANCE_TOKEN to a control token)", hint="login")
    row = _session_row(ctx.engine, data)
    if row is None or not hmac.compare_digest(row[0], secret_hash(str(data.get("secret", "")))):
        raise PermissionDenied("session not recognised", hint="login")
    if row[2]:
        raise PermissionDenied("session revoked", hint="login")
    if datetime.fromisoformat(row[1]) <= _now():
        raise PermissionDenied(f"session expired at {row[1]}", hint="login")
    if row[4] is None or int(row[4]) != ctx.os.uid:
        owner = f"OS account {row[5]} (uid {row[4]})" if row[4] is not None else "no recorded OS account"
        raise PermissionDenied(f"this session belongs to {owner}, not to {ctx.os.describe()}", hint="login")
    user = user_by_id(ctx.engine, row[3])
    if user.disabled:
        raise PermissionDenied(f"user {user.name!r} is disabled")
    return user.actor("session")


def session_id(store: SessionStore) -> str | None:
    data = store.read()
    return str(data.get("session")) if data else None


def logout(ctx: Context, store: SessionStore) -> bool:
    """Revoke this OS account's session and forget it; False when there was none."""
    data = store.read()
    if not data:
        return False
    row = _session_row(ctx.engine, data)
    mine = row is not None and row[4] is not None and int(row[4]) == ctx.os.uid and \
        hmac.compare_digest(row[0], secret_hash(str(data.get("secret", ""))))
    if mine:
        with session_scope(ctx.engine) as s:
            s.execute(update(t).where(t.c.id == str(data.get("session")), t.c.revoked_at.is_(None))
                      .values(revoked_at=_now().isoformat(timespec="seconds")))
            record(ctx, s, Event("user.logout", "user", str(data.get("user", "?")),
                                 details={"session": str(data.get("session"))}))
    store.clear()
    return True


def whoami(ctx: Context, store: SessionStore, token: str | None) -> dict:
    actor = current_actor(ctx, store, token)
    info = {"user": actor.user, "role": actor.role, "auth": actor.auth, "os_user": ctx.os.name, "os_uid": ctx.os.uid,
            "must_change_password": actor.must_change_password}
    if actor.auth == "session":
        row = _session_row(ctx.engine, store.read() or {})
        info["expires_at"] = row[1] if row else None
    return info


def deny_unauthenticated(ctx: Context, action: str, reason: str) -> None:
    """Audit a refused attempt by someone who could not be identified."""
    record_alone(ctx, Event(action, "session", ctx.os.name, outcome="denied", reason=reason,
                            details={"os_uid": ctx.os.uid}), Actor("unknown", "none", "none"))


__all__ = ["FileSessionStore", "SessionStore", "current_actor", "login", "logout", "session_path", "whoami"]
