"""API tokens for automation and the gateway: shown once, stored as a sha256, optionally limited to
adapters, expiring, revocable. Format: apl_<id>_<secret>."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.context import Context
from appliance.db import session_scope
from appliance.errors import InputError, NotFound, PermissionDenied

_TOKEN_RE = re.compile(r"^apl_([0-9a-f]{32})_([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    adapters: list[str] | None
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(ctx: Context, user_name: str, adapters: list[str] | None = None,
           expires_days: int | None = None) -> tuple[str, TokenInfo]:
    """A new token for a user; the secret is returned here and never stored."""
    from appliance.identity.roles import require
    from appliance.identity.users import get_user

    require(ctx, "tokens.manage", "token", user_name)
    user = get_user(ctx.engine, user_name)
    if user.disabled:
        raise InputError(f"user {user_name!r} is disabled")
    if expires_days is not None and expires_days < 1:
        raise InputError("--expires-days must be at least 1")
    token_id, secret = uuid.uuid4().hex, secrets.token_urlsafe(32)
    now = _now()
    info = TokenInfo(token_id, user.name, sorted(set(adapters)) if adapters else None,
                     now.isoformat(timespec="seconds"), ctx.actor.user,
                     (now + timedelta(days=expires_days)).isoformat(timespec="seconds") if expires_days else None, None)
    with session_scope(ctx.engine) as s:
        s.execute(text("INSERT INTO api_token (id, user_id, secret_hash, adapters, created_at, created_by, expires_at) "
                       "VALUES (:id, :u, :h, :a, :c, :by, :e)"),
                  {"id": token_id, "u": user.id, "h": _hash(secret),
                   "a": json.dumps(info.adapters) if info.adapters else None, "c": info.created_at,
                   "by": info.created_by, "e": info.expires_at})
        record(ctx, s, Event("token.create", "token", token_id,
                             details={"user": user.name, "adapters": info.adapters, "expires_at": info.expires_at}))
    return f"apl_{token_id}_{secret}", info


_SELECT = ("SELECT t.id, u.name, t.adapters, t.created_at, t.created_by, t.expires_at, t.revoked_at "
           "FROM api_token t JOIN app_user u ON u.id = t.user_id")


def _info(row) -> TokenInfo:
    return TokenInfo(row[0], row[1], json.loads(row[2]) if row[2] else None, row[3], row[4], row[5], row[6])


def list_tokens(ctx: Context) -> list[TokenInfo]:
    from appliance.identity.roles import require

    require(ctx, "tokens.manage", "token", "*")
    with ctx.engine.connect() as conn:
        return [_info(r) for r in conn.execute(text(f"{_SELECT} ORDER BY t.created_at")).all()]


def revoke(ctx: Context, token_id: str) -> TokenInfo:
    from appliance.identity.roles import require

    require(ctx, "tokens.manage", "token", token_id)
    with session_scope(ctx.engine) as s:
        row = s.execute(text(f"{_SELECT} WHERE t.id = :id"), {"id": token_id}).first()
        if row is None:
            raise NotFound(f"no token with id {token_id!r}")
        if row[6]:
            raise InputError(f"token {token_id} is already revoked")
        s.execute(text("UPDATE api_token SET revoked_at = :t WHERE id = :id"),
                  {"t": _now().isoformat(timespec="seconds"), "id": token_id})
        record(ctx, s, Event("token.revoke", "token", token_id, details={"user": row[1]}))
    with ctx.engine.connect() as conn:
        return _info(conn.execute(text(f"{_SELECT} WHERE t.id = :id"), {"id": token_id}).first())


def resolve(engine, token: str):
    """The user a presented token belongs to, and the token; PermissionDenied for anything not valid now."""
    from appliance.identity.users import _SELECT as USER_SELECT
    from appliance.identity.users import _user

    match = _TOKEN_RE.match(token.strip())
    if not match:
        raise PermissionDenied("API token is malformed")
    token_id, secret = match.groups()
    with engine.connect() as conn:
        row = conn.execute(text("SELECT user_id, secret_hash, expires_at, revoked_at, id, adapters, created_at, "
                                "created_by FROM api_token WHERE id = :id"), {"id": token_id}).first()
        if row is None or not hmac.compare_digest(row[1], _hash(secret)):
            raise PermissionDenied("API token not recognised")
        if row[3]:
            raise PermissionDenied("API token revoked")
        if row[2] and datetime.fromisoformat(row[2]) <= _now():
            raise PermissionDenied(f"API token expired at {row[2]}")
        user_row = conn.execute(text(f"{USER_SELECT} WHERE id = :id"), {"id": row[0]}).first()
    user = _user(user_row)
    if user.disabled:
        raise PermissionDenied(f"user {user.name!r} is disabled")
    return user, TokenInfo(token_id, user.name, json.loads(row[5]) if row[5] else None, row[6], row[7], row[2], None)
