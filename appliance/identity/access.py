"""What a user may do at the gateway, held on the user rather than on any token: the adapters they may query and
their request limits. A token narrows what its user may (`tokens create --adapters`), never widens it: a user
who mints tokens of their own gets no adapter the admin withheld and no second share of their limits, which the
gateway counts per user across all their tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import update

from appliance.audit.events import Event
from appliance.audit.log import record
from appliance.context import Context
from appliance.db import session_scope
from appliance.db.tables import app_user as t
from appliance.errors import InputError
from appliance.identity.roles import require

LIMIT_FIELDS = ("requests_per_minute", "burst", "max_concurrent")
EVERY = "any"  # `--adapters any`: every served adapter


@dataclass(frozen=True)
class UserLimits:
    """A user's own gateway limits; a field left None is the serving policy's."""

    requests_per_minute: float | None = None
    burst: int | None = None
    max_concurrent: int | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def read(cls, text: str | None) -> UserLimits | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(**{k: data.get(k) for k in LIMIT_FIELDS})


def read_adapters(text: str | None) -> list[str] | None:
    return json.loads(text) if text else None


def narrowed(user_adapters: list[str] | None, token_adapters: list[str] | None) -> list[str] | None:
    """What a token of this user may query: the user's adapters, narrowed by the token's (None: every one)."""
    if user_adapters is None:
        return token_adapters
    if token_adapters is None:
        return list(user_adapters)
    return sorted(set(user_adapters) & set(token_adapters))


def check_token_adapters(user, adapters: list[str] | None) -> None:
    """A token asked for adapters its user may not query: refused, naming them."""
    if user.adapters is None or not adapters:
        return
    outside = sorted(set(adapters) - set(user.adapters))
    if outside:
        raise InputError(f"user {user.name!r} may query only {', '.join(user.adapters) or 'no adapter'}: "
                         f"a token cannot add {', '.join(outside)}", param="adapters")


def _limits(current: UserLimits | None, changes: dict) -> UserLimits:
    """`current` with `changes` applied: a value is set, "policy" goes back to the serving policy's."""
    merged = current.as_dict() if current else {}
    for name, value in changes.items():
        if name not in LIMIT_FIELDS:
            raise InputError(f"no gateway limit named {name!r}: one of {', '.join(LIMIT_FIELDS)}", param=name)
        if value == "policy":
            merged.pop(name, None)
            continue
        integer = name != "requests_per_minute"
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or \
                (integer and value != int(value)):
            raise InputError(f"must be a positive {'integer' if integer else 'number'}, or 'policy'", param=name)
        merged[name] = int(value) if integer else float(value)
    return UserLimits(**merged)


def set_access(ctx: Context, name: str, *, adapters: list[str] | None | str = "keep", limits: dict | None = None):
    """Set (admin) the adapters `name` may query (a list; None for every one; "keep") and change their gateway
    limits (LIMIT_FIELDS to a positive number, or to "policy" for the serving policy's; fields left out are kept).
    Their tokens are narrowed at once: the gateway reads the user, not the token."""
    from appliance.identity.users import get_user

    require(ctx, "users.manage", "user", name)
    user = get_user(ctx.engine, name)
    values, details = {}, {}
    if adapters != "keep":
        cleaned = None if adapters is None else sorted({a.strip() for a in adapters if a.strip()})
        values["adapters"] = None if cleaned is None else json.dumps(cleaned)
        details["adapters"] = {"from": user.adapters, "to": cleaned}
    if limits:
        given = _limits(user.limits, limits).as_dict()
        values["limits"] = json.dumps(given) if given else None
        details["limits"] = {"from": user.limits.as_dict() if user.limits else None, "to": given or None}
    if not values:
        raise InputError("name the adapters or a limit to set")
    with session_scope(ctx.engine) as s:
        s.execute(update(t).where(t.c.id == user.id).values(**values))
        record(ctx, s, Event("user.access", "user", name, details=details))
    return get_user(ctx.engine, name)
