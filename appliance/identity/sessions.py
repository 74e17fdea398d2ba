"""Login sessions for the operating-system user, and resolving who is acting.

A session's secret lives only in a 0600 file of the OS user (APPLIANCE_SESSION_FILE, default under
~/.local/state/appliance/); the database keeps its sha256, an expiry and a revocation time. An API token
in APPLIANCE_TOKEN is the alternative for automation.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from appliance.audit.events import Event
from appliance.audit.log import record, record_alone
from appliance.config import Settings
from appliance.context import Actor, Context
from appliance.db import session_scope
from appliance.errors import PermissionDenied
from appliance.fsutil import atomic_write_bytes
from appliance.identity import tokens
from appliance.identity.users import authenticate


def _now() -> datetime:
    return datetime.now(UTC)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_file(settings: Settings) -> Path:
    explicit = settings.env.get("APPLIANCE_SESSION_FILE")
    if explicit:
        return Path(explicit)
    state = Path(settings.env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    tag = hashlib.sha256(str(settings.home).encode()).hexdigest()[:16]
    return state / "appliance" / f"session-{tag}.json"


def login(ctx: Context, name: str, password: str) -> tuple[Actor, str]:
    """Authenticate and store a session for this OS user; returns the actor and the expiry time."""
    user = authenticate(ctx, name, password)
    secret = secrets.token_urlsafe(32)
    session_id = uuid.uuid4().hex
    now = _now()
    expires = (now + timedelta(hours=ctx.settings.file.identity.session_hours)).isoformat(timespec="seconds")
    actor = Actor(user.name, user.role, "password")
    path = session_file(ctx.settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with session_scope(ctx.engine) as s:
        s.execute(text("INSERT INTO auth_session (id, user_id, secret_hash, os_user, created_at, expires_at) "
                       "VALUES (:id, :u, :h, :os, :c, :e)"),
                  {"id": session_id, "u": user.id, "h": secret_hash(secret), "os": getpass.getuser(),
                   "c": now.isoformat(timespec="seconds"), "e": expires})
        record(ctx, s, Event("user.login", "user", user.name, details={"session": session_id,
                                                                        "expires_at": expires}), actor)
        atomic_write_bytes(path, json.dumps({"home": str(ctx.settings.home), "session": session_id,
                                             "secret": secret, "user": user.name}).encode())
    return actor, expires


def _read_session_file(settings: Settings) -> dict | None:
    path = session_file(settings)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise PermissionDenied(f"{path}: unreadable session file; run `appliance login NAME` again") from None
    return data if isinstance(data, dict) else None


def current_actor(settings: Settings, engine) -> Actor:
    """Who is acting: APPLIANCE_TOKEN if set, else this OS user's session; refused otherwise."""
    token = settings.env.get("APPLIANCE_TOKEN")
    if token:
        user, _ = tokens.resolve(engine, token)
        return Actor(user.name, user.role, "token")
    data = _read_session_file(settings)
    if not data:
        raise PermissionDenied("not logged in: run `appliance login NAME` (or set APPLIANCE_TOKEN)")
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT s.secret_hash, s.expires_at, s.revoked_at, u.name, u.role, u.disabled FROM auth_session s "
            "JOIN app_user u ON u.id = s.user_id WHERE s.id = :id"), {"id": str(data.get("session"))}).first()
    if row is None or not hmac.compare_digest(row[0], secret_hash(str(data.get("secret", "")))):
        raise PermissionDenied("session not recognised: run `appliance login NAME` again")
    if row[2]:
        raise PermissionDenied("session revoked: run `appliance login NAME` again")
    if datetime.fromisoformat(row[1]) <= _now():
        raise PermissionDenied(f"session expired at {row[1]}: run `appliance login NAME` again")
    if row[5]:
        raise PermissionDenied(f"user {row[3]!r} is disabled")
    return Actor(row[3], row[4], "session")


def logout(ctx: Context) -> bool:
    """Revoke this OS user's session and delete its file; False when there was none."""
    data = _read_session_file(ctx.settings)
    path = session_file(ctx.settings)
    if not data:
        return False
    with session_scope(ctx.engine) as s:
        s.execute(text("UPDATE auth_session SET revoked_at = :t WHERE id = :id AND revoked_at IS NULL"),
                  {"t": _now().isoformat(timespec="seconds"), "id": str(data.get("session"))})
        record(ctx, s, Event("user.logout", "user", str(data.get("user", "?")),
                             details={"session": str(data.get("session"))}))
    path.unlink(missing_ok=True)
    return True


def whoami(settings: Settings, engine) -> dict:
    actor = current_actor(settings, engine)
    info = {"user": actor.user, "role": actor.role, "auth": actor.auth}
    if actor.auth == "session":
        data = _read_session_file(settings) or {}
        with engine.connect() as conn:
            info["expires_at"] = conn.execute(text("SELECT expires_at FROM auth_session WHERE id = :id"),
                                              {"id": str(data.get("session"))}).scalar()
    return info


def deny_unauthenticated(ctx: Context, action: str, reason: str) -> None:
    """Audit a refused attempt by someone who could not be identified."""
    record_alone(ctx, Event(action, "session", os.environ.get("USER", "?"), outcome="denied", reason=reason),
                 Actor("unknown", "none", "none"))
