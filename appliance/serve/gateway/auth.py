"""Who is asking: the bearer token resolved to its user, role, the adapters the user may query (narrowed by the
token) and the user's own limits, and kept for `sync_seconds`."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from appliance.context import Actor
from appliance.serve.gateway.errors import ApiError


@dataclass
class Caller:
    actor: Actor
    token_id: str
    adapters: list[str] | None  # the user's, narrowed by the token's; None for every adapter
    limits: object = None  # the user's own gateway limits (identity.access.UserLimits); None for the policy's


class Authenticator:
    """A token the gateway has accepted is trusted for `keep_seconds`: revoking it, disabling its user or changing
    the role takes effect within that time, as revoking an adapter does."""

    def __init__(self, engine, keep_seconds: float) -> None:
        self.engine, self.keep_seconds = engine, keep_seconds
        self._callers: dict[bytes, tuple[float, Caller]] = {}  # token digest -> (valid until, caller)

    def cached(self, header: str | None) -> Caller | None:
        if not header:
            return None
        hit = self._callers.get(hashlib.sha256(header.encode()).digest())
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def authenticate(self, header: str | None) -> Caller:
        from appliance.errors import PermissionDenied
        from appliance.identity import tokens
        from appliance.identity.access import narrowed
        from appliance.identity.roles import allowed

        if not header or not header.lower().startswith("bearer "):
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <API token>'",
                           "authentication_error", "invalid_api_key")
        try:
            user, info = tokens.resolve(self.engine, header[7:].strip())
        except PermissionDenied as exc:
            raise ApiError(401, str(exc), "authentication_error", "invalid_api_key") from None
        actor = Actor(user.name, user.role, "token")
        if not allowed(user.role, "serve.query"):
            raise ApiError(403, f"role {user.role} may not query models", "permission_error", "forbidden")
        caller = Caller(actor, info.id, narrowed(user.adapters, info.adapters), user.limits)
        if len(self._callers) > 10_000:
            self._callers.clear()
        self._callers[hashlib.sha256(header.encode()).digest()] = (time.monotonic() + self.keep_seconds, caller)
        return caller

    async def caller(self, header: str | None) -> Caller:
        return self.cached(header) or await asyncio.to_thread(self.authenticate, header)
