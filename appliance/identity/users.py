"""Users: create, list, disable, change role, and authenticate with lockout after repeated failures."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from appliance.audit.events import Event
from appliance.audit.log import record, record_alone
from appliance.context import Actor, Context
from appliance.db import session_scope
from appliance.errors import AlreadyExists, InputError, NotFound, PermissionDenied
from appliance.identity import passwords
from appliance.identity.roles import ROLES, require

NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: str
    disabled: bool
    failed_logins: int
    locked_until: str | None
    created_at: str
    created_by: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "role", "disabled", "failed_logins", "locked_until",
                                              "created_at", "created_by")}


_SELECT = ("SELECT id, name, role, disabled, failed_logins, locked_until, created_at, created_by FROM app_user")


def _now() -> datetime:
    return datetime.now(UTC)


def _user(row) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), int(row[4]), row[5], row[6], row[7])


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InputError(f"user name {name!r}: use 2-64 lowercase letters, digits, '.', '_' or '-', "
                         "starting with a letter")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    return role


def get_user(engine, name: str) -> User:
    with engine.connect() as conn:
        row = conn.execute(text(f"{_SELECT} WHERE name = :n"), {"n": name}).first()
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return _user(row)


def list_users(ctx: Context) -> list[User]:
    require(ctx, "users.manage", "user", "*")
    with ctx.engine.connect() as conn:
        return [_user(r) for r in conn.execute(text(f"{_SELECT} ORDER BY name")).all()]


def count_users(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM app_user")).scalar())


def add_user(ctx: Context, name: str, role: str, password: str) -> User:
    check_name(name)
    check_role(role)
    require(ctx, "users.manage", "user", name)
    passwords.check_policy(name, password, ctx.settings.file.identity.min_password_length)
    pw_hash = passwords.hash_password(password)
    user = User(uuid.uuid4().hex, name, role, False, 0, None, _now().isoformat(timespec="seconds"), ctx.actor.user)
    with session_scope(ctx.engine) as s:
        if s.execute(text("SELECT 1 FROM app_user WHERE name = :n"), {"n": name}).first():
            raise AlreadyExists(f"user {name!r} already exists")
        s.execute(text("INSERT INTO app_user (id, name, role, password_hash, disabled, failed_logins, created_at, "
                       "created_by) VALUES (:id, :name, :role, :h, FALSE, 0, :created_at, :created_by)"),
                  {"id": user.id, "name": name, "role": role, "h": pw_hash, "created_at": user.created_at,
                   "created_by": user.created_by})
        record(ctx, s, Event("user.create", "user", name, details={"role": role}))
    return user


def set_disabled(ctx: Context, name: str, disabled: bool = True) -> User:
    require(ctx, "users.manage", "user", name)
    user = get_user(ctx.engine, name)
    if name == ctx.actor.user and disabled:
        raise InputError("you cannot disable yourself")
    with session_scope(ctx.engine) as s:
        s.execute(text("UPDATE app_user SET disabled = :d WHERE id = :id"), {"d": disabled, "id": user.id})
        if disabled:
            s.execute(text("UPDATE auth_session SET revoked_at = :t WHERE user_id = :id AND revoked_at IS NULL"),
                      {"t": _now().isoformat(timespec="seconds"), "id": user.id})
        record(ctx, s, Event("user.disable" if disabled else "user.enable", "user", name))
    return get_user(ctx.engine, name)


def set_role(ctx: Context, name: str, role: str) -> User:
    check_role(role)
    require(ctx, "users.manage", "user", name)
    user = get_user(ctx.engine, name)
    if name == ctx.actor.user:
        raise InputError("you cannot change your own role")
    with session_scope(ctx.engine) as s:
        s.execute(text("UPDATE app_user SET role = :r WHERE id = :id"), {"r": role, "id": user.id})
        record(ctx, s, Event("user.set_role", "user", name, details={"from": user.role, "to": role}))
    return get_user(ctx.engine, name)


def authenticate(ctx: Context, name: str, password: str) -> User:
    """Check a password; failures count towards a lockout, and every outcome is audited."""
    cfg = ctx.settings.file.identity
    anonymous = Actor(name if NAME_RE.match(name) else "unknown", "none", "password")
    refusal = "invalid user name or password"
    with ctx.engine.connect() as conn:
        row = conn.execute(text(f"SELECT password_hash, {_SELECT[7:]} WHERE name = :n"), {"n": name}).first()
    if row is None:
        passwords.dummy_verify(password)
        record_alone(ctx, Event("user.login", "user", anonymous.user, outcome="denied", reason="unknown user"),
                     anonymous)
        raise PermissionDenied(refusal)
    stored_hash, user = row[0], _user(row[1:])
    actor = Actor(user.name, user.role, "password")
    if user.disabled:
        record_alone(ctx, Event("user.login", "user", name, outcome="denied", reason="user is disabled"), actor)
        raise PermissionDenied(f"user {name!r} is disabled")
    now = _now()
    if user.locked_until and datetime.fromisoformat(user.locked_until) > now:
        record_alone(ctx, Event("user.login", "user", name, outcome="denied", reason="locked out"), actor)
        raise PermissionDenied(f"user {name!r} is locked out until {user.locked_until} after repeated failures")
    if not passwords.verify_password(stored_hash, password):
        failures = user.failed_logins + 1
        locked = failures >= cfg.lockout_attempts
        with session_scope(ctx.engine) as s:
            s.execute(text("UPDATE app_user SET failed_logins = :f, locked_until = :l WHERE id = :id"),
                      {"f": 0 if locked else failures, "id": user.id,
                       "l": (now + timedelta(minutes=cfg.lockout_minutes)).isoformat(timespec="seconds")
                       if locked else None})
            record(ctx, s, Event("user.login", "user", name, outcome="denied", reason="wrong password",
                                 details={"failures": failures}), actor)
            if locked:
                record(ctx, s, Event("user.lockout", "user", name, outcome="denied",
                                     reason=f"{failures} failed logins",
                                     details={"minutes": cfg.lockout_minutes}), actor)
        raise PermissionDenied(refusal)
    if user.failed_logins or user.locked_until:
        with session_scope(ctx.engine) as s:
            s.execute(text("UPDATE app_user SET failed_logins = 0, locked_until = NULL WHERE id = :id"),
                      {"id": user.id})
    return user
