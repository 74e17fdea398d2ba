"""One request's passage through the gateway: its slot under the token's limits is taken and given back exactly
once, and it is recorded exactly once (one `serve.request` event), whichever way it ends: refused, answered,
streamed, cut short by the client or by the backend."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import JSONResponse

from appliance.audit.events import Event
from appliance.serve.audit_writer import AuditUnavailable
from appliance.serve.auth_failures import ANONYMOUS
from appliance.serve.gateway.auth import Caller
from appliance.serve.gateway.errors import ApiError
from appliance.terminal import safe

NOT_SERVED = "(not served)"  # the object of a request for a model the gateway does not serve


@dataclass
class Outcome:
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    text: list[str] = field(default_factory=list)
    error: str = ""
    entities: dict = field(default_factory=dict)
    path: str = ""  # which path answered (the backend's served_by)
    response_id: str = ""  # the id the client got, so an auditor can match an answer to its event
    clamped: int | None = None  # the max_tokens asked for, when the policy served fewer
    user: str | None = None  # the request's `user` field (an end-user id the client application sends)


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), exc.status, headers=exc.headers)


class RequestScope:
    def __init__(self, gateway, route: str, request: Request) -> None:
        self.gateway, self.route = gateway, route
        self.source = request.client.host if request.client else "-"
        self.started = time.perf_counter()
        self.caller: Caller | None = None
        self.model = self.digest = self.prompt_text = ""
        self.stream = False
        self.outcome = Outcome()
        self._slot: str | None = None
        self._recorded = False
        self.latency = 0.0

    @property
    def adapter(self) -> str | None:
        return None if self.model == self.gateway.model else self.model

    def acquire(self) -> None:
        self.gateway.limits.acquire(self.caller.actor.user, self.caller.limits)  # the user's, not the token's
        self._slot = self.caller.actor.user

    def release(self) -> None:
        if self._slot is not None:
            slot, self._slot = self._slot, None
            self.gateway.limits.release(slot)

    async def record(self) -> None:
        """The request's one audit event, durable when this returns; AuditUnavailable when it cannot be."""
        self.release()
        if self._recorded:
            return
        self._recorded = True
        gateway, outcome = self.gateway, self.outcome
        self.latency = time.perf_counter() - self.started
        label = gateway.label(self.model)
        gateway.metrics.requests.labels(label, str(outcome.status)).inc()
        gateway.metrics.latency.labels(label).observe(self.latency)
        if outcome.prompt_tokens:
            gateway.metrics.tokens.labels(label, "prompt").inc(outcome.prompt_tokens)
        if outcome.completion_tokens:
            gateway.metrics.tokens.labels(label, "completion").inc(outcome.completion_tokens)
        await gateway.audit.write(self.caller.actor if self.caller else ANONYMOUS, self._event)

    async def refuse(self, exc: ApiError, error: str | None = None) -> JSONResponse:
        """An OpenAI error for the client; the refusal is on the record (failed logins are counted instead)."""
        self.release()
        self.outcome.status, self.outcome.error = exc.status, error or exc.message
        if exc.status == 401:  # counted per source and interval (auth_failures.py), not an event each
            self._recorded = True
            self.gateway.auth_failures.note(self.source, exc.message)
        elif exc.code == "audit_unavailable":
            self._recorded = True  # nothing can be recorded now; the outage is its own event later
        else:
            with contextlib.suppress(AuditUnavailable):  # a refusal serves nothing: it is not held back
                await self.record()
        return error_response(exc)

    async def close(self) -> None:
        """However the request ended: its slot back, and its event written if it was not."""
        self.release()
        if not self._recorded:
            with contextlib.suppress(AuditUnavailable):
                await self.record()

    def _event(self, text_error: str | None = None) -> Event:
        gateway, outcome = self.gateway, self.outcome
        details = {"route": self.route, "status": outcome.status, "stream": self.stream,
                   "token_id": self.caller.token_id if self.caller else None,
                   "usage": {"prompt": outcome.prompt_tokens, "completion": outcome.completion_tokens},
                   "latency_ms": round(self.latency * 1000, 1)}
        for key, value in (("output_entities", outcome.entities), ("served_by", outcome.path),
                           ("response_id", outcome.response_id), ("max_output_asked", outcome.clamped),
                           ("client_user", outcome.user)):
            if value:
                details[key] = value
        if outcome.status == 200:
            if text_error:  # the text could not be kept as the policy says; the request is still recorded
                details.update(prompt=None, completion=None, text_kept=f"none ({text_error[:200]})")
            else:
                details["prompt"] = gateway.kept_text(self.prompt_text)
                details["completion"] = gateway.kept_text("".join(outcome.text))
                details["text_kept"] = gateway.policy.audit_text
        result = "ok" if outcome.status == 200 else "denied" if outcome.status in (401, 403, 429) else "error"
        model = self.model if self.model and gateway.label(self.model) == self.model else NOT_SERVED
        if model == NOT_SERVED and self.model:  # a client's free text: kept escaped and cut short, never as the name
            details["model_asked"] = safe(self.model)[:64]
        return Event("serve.request", "model", model, outcome=result, reason=safe(outcome.error)[:500],
                     object_sha256=self.digest, details=details)
