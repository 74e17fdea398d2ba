"""API tokens: shown once, stored as a sha256, expiring, revocable. Format: apl_<id>_<secret>.

Two scopes. A gateway token (the default) only queries served models, optionally narrowed to some of the
adapters its user may query (`identity.access`: what a user may query and their limits are the user's);
an admin may issue one for anyone. A control token works the command line (APPLIANCE_TOKEN) with its owner's
powers, so nobody can mint one for somebody else: only its owner, for themselves, or an admin for a service
account of role `user`. A control token is bound to one OS account (the creator's own, or the one named for a
service account) and refused from any other. Neither scope is accepted where the other is expected.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from appliance.audit.events import Event
from appliance.audit.log import record, record_alone
from appliance.context import Context, os_user_name
from appliance.db import session_scope
from appliance.db.tables import api_token as t
from appliance.db.tables import app_user
from appliance.errors import InputError, NotFound, PermissionDenied
from appliance.identity.access import check_token_adapters
from appliance.identity.roles import allowed, require
from appliance.identity.users import get_user, user_by_id

TOKEN_RE = re.compile(r"^apl_([0-9a-f]{32})_([A-Za-z0-9_-]{20,})$")
GATEWAY, CONTROL = "gateway", "control"
SCOPES = (GATEWAY, CONTROL)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    adapters: list[str] | None
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    scope: str = GATEWAY
    os_uid: int | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _os_uid(os_user: str) -> int:
    import pwd

    try:
        return pwd.getpwnam(os_user).pw_uid
    except KeyError:
        raise InputError(f"no OS account named {os_user!r} on this host", param="os_user") from None


def _refuse(ctx: Context, user_name: str, reason: str) -> None:
    record_alone(ctx, Event("token.create", "token", user_name, outcome="denied", reason=reason))
    raise PermissionDenied(reason)


def create(ctx: Context, user_name: str | None = None, adapters: list[str] | None = None,
           expires_days: int | None = None, *, scope: str = GATEWAY, os_user: str | None = None
           ) -> tuple[str, TokenInfo]:
    """A new token for a user (default: the actor); the secret is returned here and never stored."""
    user_name = user_name or ctx.actor.user
    if scope not in SCOPES:
        raise InputError(f"scope {scope!r}: one of {', '.join(SCOPES)}", param="scope")
    own = user_name == ctx.actor.user
    require(ctx, "tokens.own" if own else "tokens.manage", "token", user_name)
    user = get_user(ctx.engine, user_name)
    if user.disabled:
        raise InputError(f"user {user_name!r} is disabled")
    if expires_days is not None and expires_days < 1:
        raise InputError("must be at least 1", param="expires_days")
    bound_uid = None
    if scope == CONTROL:
        if adapters:
            raise InputError("a control token works the command line; adapters limit gateway tokens", param="adapters")
        if not own and user.role != "user":
            _refuse(ctx, user_name, f"a control token carries its owner's powers: only {user_name} may create one "
                                    f"for {user_name} (an admin may for service accounts of role user; "
                                    f"{user_name} is {user.role})")
        if own and os_user is not None and os_user != ctx.os.name:
            raise InputError("your own control token is bound to your OS account", param="os_user")
        if not own and os_user is None:
            raise InputError("name the OS account the service account's automation runs as", param="os_user")
        bound_uid = ctx.os.uid if own else _os_uid(os_user)
    elif os_user is not None:
        raise InputError("only control tokens are bound to an OS account", param="os_user")
    elif not allowed(user.role, "serve.query"):
        raise InputError(f"user {user_name!r} ({user.role}) may not query models")
    else:
        check_token_adapters(user, adapters)
    token_id, secret = uuid.uuid4().hex, secrets.token_urlsafe(32)
    now = _now()
    info = TokenInfo(token_id, user.name, sorted(set(adapters)) if adapters else None,
                     now.isoformat(timespec="seconds"), ctx.actor.user,
                     (now + timedelta(days=expires_days)).isoformat(timespec="seconds") if expires_days else None, None,
                     scope, bound_uid)
    with session_scope(ctx.engine) as s:
        s.execute(insert(t).values(
            id=token_id, user_id=user.id, secret_hash=_hash(secret),
            adapters=json.dumps(info.adapters) if info.adapters else None, created_at=info.created_at,
            created_by=info.created_by, expires_at=info.expires_at, scope=scope, os_uid=bound_uid))
        record(ctx, s, Event("token.create", "token", token_id, details={
            "user": user.name, "adapters": info.adapters, "expires_at": info.expires_at, "scope": scope,
            "bound_os_user": os_user_name(bound_uid) if bound_uid is not None else None}))
    return f"apl_{token_id}_{secret}", info


_SELECT = select(t.c.id, app_user.c.name.label("user"), t.c.adapters, t.c.created_at, t.c.created_by,
                 t.c.expires_at, t.c.revoked_at, t.c.scope, t.c.os_uid).join_from(t, app_user,
                                                                                   app_user.c.id == t.c.user_id)


def _info(row) -> TokenInfo:
    values = dict(row._mapping)
    return TokenInfo(**{**values, "adapters": json.loads(row.adapters) if row.adapters else None,
                        "os_uid": None if row.os_uid is None else int(row.os_uid)})


def list_tokens(ctx: Context) -> list[TokenInfo]:
    """Every token for an admin; one's own otherwise."""
    manage = allowed(ctx.actor.role, "tokens.manage")
    require(ctx, "tokens.manage" if manage else "tokens.own", "token", "*")
    query = _SELECT.order_by(t.c.created_at)
    if not manage:
        query = query.where(app_user.c.name == ctx.actor.user)
    with ctx.engine.connect() as conn:
        return [_info(r) for r in conn.execute(query).all()]


def revoke(ctx: Context, token_id: str) -> TokenInfo:
    with ctx.engine.connect() as conn:
        row = conn.execute(_SELECT.where(t.c.id == token_id)).first()
    own = row is not None and row.user == ctx.actor.user
    require(ctx, "tokens.own" if own else "tokens.manage", "token", token_id)
    if row is None:
        raise NotFound(f"no token with id {token_id!r}")
    if row.revoked_at:
        raise InputError(f"token {token_id} is already revoked")
    with session_scope(ctx.engine) as s:
        s.execute(update(t).where(t.c.id == token_id).values(revoked_at=_now().isoformat(timespec="seconds")))
        record(ctx, s, Event("token.revoke", "token", token_id, details={"user": row.user}))
    with ctx.engine.connect() as conn:
        return _info(conn.execute(_SELECT.where(t.c.id == token_id)).first())


def resolve(engine, token: str, *, scope: str = GATEWAY, os_uid: int | None = None):
    """The user a presented token belongs to, and the token; PermissionDenied for anything not valid here now:
    another scope, a control token from another OS account, revoked, expired, a disabled user."""
    match = TOKEN_RE.match(token.strip())
    if not match:
        raise PermissionDenied("API token is malformed")
    token_id, secret = match.groups()
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == token_id)).first()
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
        raise PermissionDenied("API token not recognised")
    if row.revoked_at:
        raise PermissionDenied("API token revoked")
    if row.expires_at and datetime.fromisoformat(row.expires_at) <= _now():
        raise PermissionDenied(f"API token expired at {row.expires_at}")
    if row.scope != scope:
        names = {GATEWAY: "the gateway (queries only)", CONTROL: "the command line"}
        raise PermissionDenied(f"this API token is for {names.get(row.scope, row.scope)}, not for {names[scope]}")
    if scope == CONTROL and (row.os_uid is None or int(row.os_uid) != os_uid):
        raise PermissionDenied(f"this control token is bound to OS account {os_user_name(int(row.os_uid))}"
                               if row.os_uid is not None else "this control token is bound to no OS account")
    user = user_by_id(engine, row.user_id)
    if user.disabled:
        raise PermissionDenied(f"user {user.name!r} is disabled")
    return user, TokenInfo(token_id, user.name, json.loads(row.adapters) if row.adapters else None, row.created_at,
                           row.created_by, row.expires_at, None, row.scope,
                           None if row.os_uid is None else int(row.os_uid))
