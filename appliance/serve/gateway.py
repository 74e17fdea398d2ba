"""The OpenAI-compatible gateway (FastAPI + uvicorn; aiohttp to the backend for completions, streams passed
through; httpx for the backend's health and adapter calls).

Every request: bearer token (401), the model is the base or an approved, verified, loaded adapter that the
token may use (403), per-token rate and concurrency limits (429 with Retry-After), body and max_tokens limits
(413, 400), then the backend; one audit event per request (token owner, model, adapter digest, token counts,
latency, outcome, and the text as the serving policy says). The adapter set follows the registry: an approved
artifact is verified and loaded, a revoked one unloaded, without a restart. A backend that dies is restarted;
a stream it was serving ends with an OpenAI-style error event.

An answer leaves only once its audit event is durable (`audit_writer.py`); while the trail cannot record, requests
are refused with 503 and `/readyz` says not ready. An adapter is loaded only when the trail itself proves its
approval (`audit/proofs.py`), whatever its status column says. The gateway never signs audit checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import httpx
from fastapi import Request

from appliance.audit.events import Event
from appliance.context import Actor, Context
from appliance.serve import protocol, tool_calls
from appliance.serve.audit_writer import AuditUnavailable, AuditWriter
from appliance.serve.auth_failures import ANONYMOUS, AuthFailures
from appliance.serve.backend import completion_routes
from appliance.serve.backends import AdapterFiles, Backend
from appliance.serve.policy import ServingPolicy

log = logging.getLogger("appliance.serve")

GATEWAY = Actor("gateway", "system", "system")
# What a backend that died, hung up or answered garbage raises, through either client.
BACKEND_ERRORS = (httpx.HTTPError, aiohttp.ClientError, TimeoutError)


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None,
                 headers: dict[str, str] | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers or {}
        self.param = param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def backend_refused(status: int, data) -> ApiError:
    """The backend's own OpenAI-style error, passed on with its status."""
    error = data.get("error", {}) if isinstance(data, dict) else {}
    return ApiError(status, error.get("message", "the backend refused the request"),
                    error.get("type", "invalid_request_error"), error.get("code"))


def audit_unavailable(reason: str) -> ApiError:
    return ApiError(503, f"{reason}; nothing is served until every request can be audited", "server_error",
                    "audit_unavailable", {"Retry-After": "5"})


def backend_failed() -> ApiError:
    return ApiError(502, "the model backend failed while answering; it is being restarted", "server_error",
                    "backend_unavailable")


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("appliance_requests", "Requests by model and HTTP status", ["model", "status"],
                                registry=self.registry)
        self.latency = Histogram("appliance_request_seconds", "Request latency to the last byte", ["model"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.tokens = Counter("appliance_tokens", "Tokens by model and kind (prompt, completion)", ["model", "kind"],
                              registry=self.registry)
        self.adapters = Gauge("appliance_adapters_loaded", "Adapters loaded in the backend", registry=self.registry)
        self.restarts = Counter("appliance_backend_restarts", "Backend restarts after it stopped",
                                registry=self.registry)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class RateLimiter:
    """Per token: a bucket of `burst` requests refilled at `rate` per minute, and a cap on requests in flight."""

    def __init__(self, rate_per_minute: float, burst: int, max_concurrent: int) -> None:
        self.rate, self.burst, self.max_concurrent = rate_per_minute / 60.0, burst, max_concurrent
        self.buckets: dict[str, tuple[float, float]] = {}
        self.in_flight: dict[str, int] = {}

    def acquire(self, key: str) -> None:
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if self.in_flight.get(key, 0) >= self.max_concurrent:
            self.buckets[key] = (tokens, now)
            raise ApiError(429, f"too many requests in flight for this token (at most {self.max_concurrent})",
                           "rate_limit_error", "concurrency_limit", {"Retry-After": "1"})
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise ApiError(429, f"rate limit: {self.burst} requests, refilled at {self.rate * 60:g} a minute",
                           "rate_limit_error", "rate_limit_exceeded", {"Retry-After": str(max(1, wait))})
        self.buckets[key] = (tokens - 1.0, now)
        self.in_flight[key] = self.in_flight.get(key, 0) + 1

    def release(self, key: str) -> None:
        self.in_flight[key] = max(0, self.in_flight.get(key, 0) - 1)


class BackendResponse:
    """The backend's answer to a completion (aiohttp's response), with the few calls the gateway makes."""

    def __init__(self, raw: aiohttp.ClientResponse, content: bytes | None = None, done=None) -> None:
        self.raw, self.content, self.status_code, self.done = raw, content, raw.status, done

    def json(self):
        return json.loads(self.content)

    async def aread(self) -> bytes:
        if self.content is None:
            self.content = await self.raw.read()
        return self.content

    async def aiter_lines(self) -> AsyncIterator[str]:
        async for line in self.raw.content:
            yield line.decode().rstrip("\r\n")

    async def aclose(self) -> None:
        if self.raw.content.at_eof():
            self.raw.release()  # back to the pool
        else:
            self.raw.close()  # a stream left early: the connection goes with it
        if self.done is not None:
            done, self.done = self.done, None
            done()


@dataclass
class Caller:
    actor: Actor
    token_id: str
    adapters: list[str] | None


@dataclass
class Outcome:
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    text: list[str] = field(default_factory=list)
    error: str = ""
    entities: dict = field(default_factory=dict)
    path: str = ""  # the backend's system_fingerprint: llama.cpp says base, lora or merged
    response_id: str = ""  # the id the client got, so an auditor can match an answer to its event
    clamped: int | None = None  # the max_tokens asked for, when the policy served fewer
    user: str | None = None  # the request's `user` field (an end-user id the client application sends)


class Gateway:
    def __init__(self, ctx: Context, backend: Backend, model: str, model_digest: str, policy: ServingPolicy,
                 log_dir) -> None:
        from appliance.keys.crypto import local_key

        # The signer processes sign audit checkpoints; on an install this one cannot read the passphrase either.
        self.ctx = ctx.acting_as(GATEWAY).not_signing()
        self.text_key = local_key(ctx.settings, "serve-text")
        self.backend, self.model, self.model_digest, self.policy = backend, model, model_digest, policy
        self.log = log_dir / "backend.log"
        self.metrics = Metrics()
        self.limits = RateLimiter(policy.limits.requests_per_minute, policy.limits.burst,
                                  policy.limits.max_concurrent)
        self.loaded: dict[str, str] = {}  # adapter name -> artifact manifest digest
        self.refused: dict[str, str] = {}  # adapter name -> manifest digest whose load was refused
        self.ready = asyncio.Event()  # set once the backend answers and its adapters are loaded
        self.audit = AuditWriter(self.ctx)
        self.auth_failures = AuthFailures(self.audit, policy.server.auth_failures_every_seconds)
        self.client: httpx.AsyncClient | None = None  # health and adapter calls
        self.session: aiohttp.ClientSession | None = None  # completions: a third of httpx's cost per request
        self._callers: dict[bytes, tuple[float, Caller]] = {}  # token digest -> (valid until, caller)
        self._tasks: list[asyncio.Task] = []
        self._scrubber = None
        self._scrub_lock = threading.Lock()

    # --- life cycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.client = httpx.AsyncClient(transport=self.backend.transport(), base_url=self.backend.base_url,
                                        timeout=httpx.Timeout(600.0, connect=5.0), headers=self.backend.headers())
        self.session = aiohttp.ClientSession(base_url=self.backend.base_url, connector=self.backend.connector(),
                                             timeout=aiohttp.ClientTimeout(total=600.0, connect=5.0),
                                             headers=self.backend.headers())
        await self._start_backend()
        await self.sync()
        self.ready.set()
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._supervise()),
                       asyncio.create_task(self.auth_failures.run())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.backend.stop)
        if self.client:
            await self.client.aclose()
        if self.session:
            await self.session.close()
        self.auth_failures.flush()
        await asyncio.to_thread(self.audit.close)

    async def _start_backend(self, timeout: float = 600.0) -> None:
        await asyncio.to_thread(self.backend.start, self.log)
        deadline = time.monotonic() + timeout
        while not await self.backend.healthy(self.client):
            if not self.backend.alive():
                raise RuntimeError(f"the {self.backend.kind} backend exited while starting; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.backend.kind} backend did not answer within {timeout:.0f}s")
            await asyncio.sleep(0.1)

    async def backend_back(self, timeout: float = 120.0) -> bool:
        """After a request found the backend gone: wait for the supervisor's restart. False if it stays down."""
        if self.backend.alive() and await self.backend.healthy(self.client):
            return True  # it answers again: a passing failure
        self.ready.clear()  # the supervisor sees the exit within its next look and starts a new one
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def post(self, path: str, body: dict, adapter: str | None = None, stream: bool = False) -> BackendResponse:
        """POST to the backend for the base (`adapter` None) or an adapter; a backend that died before answering
        is waited for (restarted) and asked again. With `stream` the response is open for reading (the caller
        closes it)."""
        for attempt in (1, 2):
            route = self.backend.route(adapter, body)
            try:
                raw = await (route.session or self.session).post(path, json=route.body)
                if stream:
                    return BackendResponse(raw, done=route.close)
                try:
                    return BackendResponse(raw, await raw.read())
                finally:
                    raw.release()
                    route.close()
            except aiohttp.ClientConnectionError:  # refused, or hung up before answering
                route.close()
                if attempt == 2 or not await self.backend_back():
                    raise
            except BaseException:
                route.close()
                raise
        raise AssertionError("unreachable")

    async def _supervise(self) -> None:
        """Restart a backend that stopped, and load its adapters again."""
        while True:
            await asyncio.sleep(0.2)
            if self.backend.alive():
                continue
            self.ready.clear()
            code = self.backend.proc.returncode if self.backend.proc else None
            self.metrics.restarts.inc()
            self.audit.put(GATEWAY, Event("serve.backend_restart", "backend", self.backend.kind, outcome="error",
                                          reason=f"the backend exited with status {code}; restarting"))
            try:
                previous, self.loaded = self.loaded, {}
                await self._start_backend()
                self.refused.clear()
                await self.sync()
                self.ready.set()  # requests waiting for the restart go on, with the adapters loaded again
                if set(previous) - set(self.loaded):
                    log.warning("after the restart, not loaded again: %s", sorted(set(previous) - set(self.loaded)))
            except Exception as exc:
                log.warning("backend restart failed: %s; trying again", exc)
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.policy.sync_seconds)
            if not self.ready.is_set():
                continue
            try:
                await self.sync()
            except Exception as exc:  # the registry or the backend was briefly unreachable: next round
                log.warning("adapter sync: %s: %s", type(exc).__name__, exc)

    # --- the adapter set follows the registry -----------------------------------------------------------------
    def _wanted(self) -> dict[str, tuple[str, str]]:
        """Approved artifacts trained on the served base and signed with a key that is not revoked:
        name -> (manifest digest, directory)."""
        from appliance.artifacts import registry
        from appliance.keys.store import list_keys
        from appliance.train import runs

        revoked = {k.key_id for k in list_keys(self.ctx.engine) if k.status == "revoked"}
        wanted = {}
        for artifact in registry.list_artifacts(self.ctx.engine):
            if artifact.status != "approved" or artifact.signing_key_id in revoked:
                continue
            if runs.get_run(self.ctx.engine, artifact.run_name).base_model != self.model:
                continue
            wanted[artifact.name] = (artifact.manifest_digest, str(artifact.directory(self.ctx.settings)))
        return wanted

    def _verify(self, name: str) -> tuple[bool, str]:
        from appliance.artifacts import registry
        from appliance.artifacts.signing import verify
        from appliance.audit.proofs import approval_problem
        from appliance.audit.verify import Trust

        artifact = registry.get(self.ctx.engine, self.ctx.settings, name)
        if artifact.status != "approved":
            return False, "no longer approved"
        problem = approval_problem(self.ctx.engine, Trust.of(self.ctx.settings, with_anchors=False), name,
                                   artifact.manifest_digest)
        if problem:
            return False, problem
        result = verify(self.ctx, name)
        if not result.ok:
            return False, "; ".join(f"{c['check']}: {c['detail']}" for c in result.checks if not c["ok"])
        return True, f"verified with key {result.key_id[:16]}; approval proven in the audit trail"

    async def sync(self) -> None:
        from pathlib import Path

        wanted = await asyncio.to_thread(self._wanted)
        for name in [n for n in self.loaded if n not in wanted or wanted[n][0] != self.loaded[n]]:
            digest = self.loaded.pop(name)  # refused at the gateway from now on, whatever the backend holds
            await self.backend.unload(self.client, name)
            self.audit.put(GATEWAY, Event("serve.unload", "artifact", name, object_sha256=digest,
                                          reason="no longer approved, or its signing key was revoked"))
        staged: list[tuple[str, str, str]] = []
        for name, (digest, directory) in wanted.items():
            if name in self.loaded or self.refused.get(name) == digest:
                continue
            ok, detail = await asyncio.to_thread(self._verify, name)
            if not ok and "not yet covered by a signed checkpoint" in detail:
                continue  # the signer anchors it within the audit policy's cadence: look again next round
            if not ok:
                self.refused[name] = digest
                self.audit.put(GATEWAY, Event("serve.load", "artifact", name, outcome="denied",
                                              object_sha256=digest, reason=detail))
                log.warning("refused to load %s: %s", name, detail)
                continue
            try:
                await self.backend.load(self.client, AdapterFiles(name, Path(directory), digest))
            except httpx.HTTPStatusError as exc:
                self._load_failed(name, digest, exc.response.text[:300])
                continue
            staged.append((name, digest, detail))
        problem = await self.backend.commit()  # llama-server: an engine with the new adapter list
        if problem:
            for name, digest, _ in staged:
                await self.backend.unload(self.client, name)
                self._load_failed(name, digest, problem)
            staged = []
            await self.backend.commit()
        for name, digest, detail in staged:
            try:  # served only once its load is on the record
                await self.audit.write(GATEWAY, Event("serve.load", "artifact", name, object_sha256=digest,
                                                      reason=detail))
            except AuditUnavailable:
                await self.backend.unload(self.client, name)
                continue
            self.loaded[name] = digest
            self.refused.pop(name, None)
        self.metrics.adapters.set(len(self.loaded))

    def _load_failed(self, name: str, digest: str, why: str) -> None:
        log.warning("the backend could not load %s: %s", name, why)
        self.refused[name] = digest
        self.audit.put(GATEWAY, Event("serve.load", "artifact", name, outcome="error", object_sha256=digest,
                                      reason=f"the backend could not load it: {why}"))

    # --- requests ---------------------------------------------------------------------------------------------
    def cached_caller(self, header: str | None) -> Caller | None:
        """The caller this header authenticated less than `sync_seconds` ago: revoking a token, disabling its
        user or changing the role takes effect within that time, as revoking an adapter does."""
        if not header:
            return None
        hit = self._callers.get(hashlib.sha256(header.encode()).digest())
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def authenticate(self, header: str | None) -> Caller:
        from appliance.errors import PermissionDenied
        from appliance.identity import tokens
        from appliance.identity.roles import allowed

        if not header or not header.lower().startswith("bearer "):
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <API token>'",
                           "authentication_error", "invalid_api_key")
        try:
            user, info = tokens.resolve(self.ctx.engine, header[7:].strip())
        except PermissionDenied as exc:
            raise ApiError(401, str(exc), "authentication_error", "invalid_api_key") from None
        actor = Actor(user.name, user.role, "token")
        if not allowed(user.role, "serve.query"):
            raise ApiError(403, f"role {user.role} may not query models", "permission_error", "forbidden")
        caller = Caller(actor, info.id, info.adapters)
        if len(self._callers) > 10_000:
            self._callers.clear()
        self._callers[hashlib.sha256(header.encode()).digest()] = (time.monotonic() + self.policy.sync_seconds,
                                                                    caller)
        return caller

    async def caller(self, header: str | None) -> Caller:
        return self.cached_caller(header) or await asyncio.to_thread(self.authenticate, header)

    def visible_models(self, caller: Caller) -> list[str]:
        adapters = [n for n in self.loaded if caller.adapters is None or n in caller.adapters]
        return [self.model, *sorted(adapters)]

    def check_model(self, caller: Caller, name) -> str:
        if not isinstance(name, str) or not name:
            raise ApiError(400, "'model' is required: the base model's name or an adapter's", "invalid_request_error",
                           "model_required")
        if name == self.model:
            return self.model_digest
        if name not in self.loaded:
            raise ApiError(404, f"the model {name!r} does not exist or is not served (approved adapters only)",
                           "invalid_request_error", "model_not_found")
        if caller.adapters is not None and name not in caller.adapters:
            raise ApiError(403, f"this token may not use adapter {name!r}", "permission_error", "adapter_not_allowed")
        return self.loaded[name]

    def scrubber(self):
        """The ingest scrubber, loaded at its first use; callers hold `_scrub_lock`."""
        if self._scrubber is None:
            from appliance.data.ingest import default_scrubber

            self._scrubber = default_scrubber(self.ctx, self.text_key)
        return self._scrubber

    def kept_text(self, text: str) -> str | None:
        mode = self.policy.audit_text
        if mode == "none":
            return None
        if mode == "digest":  # keyed: a dictionary of likely prompts does not reverse it
            return "hmac-sha256:" + hmac.new(self.text_key, text.encode(), hashlib.sha256).hexdigest()
        with self._scrub_lock:
            return self.scrubber().scrub([text])[0].text

    def filter_output(self, text: str, outcome: Outcome) -> str:
        if self.policy.output_filter == "off" or not text:
            return text
        with self._scrub_lock:
            result = self.scrubber().scrub([text])[0]
        outcome.entities = dict(result.found)
        return result.text if self.policy.output_filter == "redact" else text

    async def record(self, caller: Caller | None, model: str, digest: str, route: str, started: float,
                     outcome: Outcome, prompt_text: str, stream: bool) -> None:
        """The request's one audit event, durable when this returns; AuditUnavailable when it cannot be."""
        latency = time.perf_counter() - started
        label = model if model == self.model or model in self.loaded else "-"  # never a caller's free text
        self.metrics.requests.labels(label, str(outcome.status)).inc()
        self.metrics.latency.labels(label).observe(latency)
        if outcome.prompt_tokens:
            self.metrics.tokens.labels(label, "prompt").inc(outcome.prompt_tokens)
        if outcome.completion_tokens:
            self.metrics.tokens.labels(label, "completion").inc(outcome.completion_tokens)
        details = {"route": route, "status": outcome.status, "stream": stream,
                   "token_id": caller.token_id if caller else None,
                   "usage": {"prompt": outcome.prompt_tokens, "completion": outcome.completion_tokens},
                   "latency_ms": round(latency * 1000, 1)}
        if outcome.entities:
            details["output_entities"] = outcome.entities
        if outcome.path:
            details["served_by"] = outcome.path
        if outcome.response_id:
            details["response_id"] = outcome.response_id
        if outcome.clamped:
            details["max_tokens_asked"] = outcome.clamped
        if outcome.user:
            details["client_user"] = outcome.user
        result = "ok" if outcome.status == 200 else "denied" if outcome.status in (401, 403, 429) else "error"
        completion = "".join(outcome.text)

        def event(text_error: str | None = None) -> Event:
            if outcome.status == 200:
                if text_error:  # the text could not be kept as the policy says; the request is still recorded
                    details.update(prompt=None, completion=None, text_kept=f"none ({text_error[:200]})")
                else:
                    details["prompt"] = self.kept_text(prompt_text)
                    details["completion"] = self.kept_text(completion)
                    details["text_kept"] = self.policy.audit_text
            return Event("serve.request", "model", model or "-", outcome=result, reason=outcome.error,
                         object_sha256=digest, details=details)

        await self.audit.write(caller.actor if caller else ANONYMOUS, event)


async def read_body(request: Request, policy: ServingPolicy) -> bytes:
    """The body, refused (413) as soon as it passes the policy's size, chunked or not, and (408) when the client
    sends it slower than the policy allows."""
    limit = policy.limits.max_request_bytes
    too_large = ApiError(413, f"request body over {limit} bytes", "invalid_request_error", "request_too_large")
    size = request.headers.get("content-length")
    if size and size.isdigit() and int(size) > limit:
        raise too_large  # refused before the body is read
    chunks: list[bytes] = []

    async def collect() -> None:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise too_large
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), policy.server.body_timeout_seconds)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {policy.server.body_timeout_seconds:g}s",
                       "invalid_request_error", "request_timeout") from None
    return b"".join(chunks)


def create_app(gateway: Gateway):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            await gateway.start()
        except BaseException:
            await gateway.stop()
            raise
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(title="appliance gateway", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    def error_response(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        audit = gateway.audit.failure or "ok"
        ready = audit == "ok" and gateway.ready.is_set() and await gateway.backend.healthy(gateway.client)
        body = {"ready": ready, "backend": gateway.backend.kind, "model": gateway.model,
                "adapters": sorted(gateway.loaded), "audit": audit}
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics():
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def listing_caller(request: Request) -> Caller:
        try:
            return await gateway.caller(request.headers.get("authorization"))
        except ApiError as exc:
            if exc.status == 401:
                gateway.auth_failures.note(request.client.host if request.client else "-", exc.message)
            raise

    @app.get("/v1/models")
    async def models(request: Request):
        try:
            caller = await listing_caller(request)
        except ApiError as exc:
            return error_response(exc)
        now = int(time.time())
        return {"object": "list", "data": [{"id": n, "object": "model", "created": now, "owned_by": "appliance"}
                                           for n in gateway.visible_models(caller)]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str, request: Request):
        try:
            caller = await listing_caller(request)
        except ApiError as exc:
            return error_response(exc)
        if name not in gateway.visible_models(caller):
            return error_response(ApiError(404, f"the model {name!r} does not exist or is not served",
                                           "invalid_request_error", "model_not_found", param="model"))
        return {"id": name, "object": "model", "created": int(time.time()), "owned_by": "appliance"}

    async def complete(route: str, request: Request):
        started = time.perf_counter()
        caller, model, digest, body, limited = None, "", "", {}, None
        outcome = Outcome()

        async def refused(exc: ApiError, prompt_text: str = "", stream: bool = False, error: str | None = None):
            outcome.status, outcome.error = exc.status, error or exc.message
            if exc.status == 401:  # counted per source and minute (auth_failures.py), not an event each
                gateway.auth_failures.note(request.client.host if request.client else "-", exc.message)
            elif exc.code != "audit_unavailable":
                with contextlib.suppress(AuditUnavailable):  # a refusal serves nothing: it is not held back
                    await gateway.record(caller, model, digest, route, started, outcome, prompt_text, stream)
            return error_response(exc)

        try:
            try:
                gateway.audit.check()
            except AuditUnavailable as exc:
                raise audit_unavailable(str(exc)) from None
            caller = await gateway.caller(request.headers.get("authorization"))  # before the body is read
            raw = await read_body(request, gateway.policy)
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise ApiError(400, "the request body is not valid JSON", "invalid_request_error",
                               "invalid_json") from None
            model = parsed.get("model", "") if isinstance(parsed, dict) else ""
            digest = gateway.check_model(caller, model)
            outcome.user = protocol.user_of(parsed)
            try:
                checked = protocol.parse(parsed, route, gateway.policy, gateway.backend.supported)
            except protocol.ProtocolError as exc:
                raise ApiError(400, exc.message, "invalid_request_error", exc.code, param=exc.param) from None
            body, outcome.clamped = checked.body, checked.clamped
            gateway.limits.acquire(caller.token_id)
            limited = caller.token_id
            if not gateway.ready.is_set():
                try:
                    await asyncio.wait_for(gateway.ready.wait(), 120)
                except TimeoutError:
                    raise ApiError(503, "the model backend is restarting; try again", "server_error",
                                   "backend_unavailable", {"Retry-After": "5"}) from None
                digest = gateway.check_model(caller, model)  # an adapter may be gone after the restart
        except ApiError as exc:
            if limited:
                gateway.limits.release(limited)
            return await refused(exc)
        path = "/v1/chat/completions" if route == "chat" else "/v1/completions"
        prompt_text = checked.prompt_text
        adapter = None if model == gateway.model else model
        upstream_body, emulated = body, False
        if route == "chat" and not await gateway.backend.native_tools():
            try:
                rewritten = tool_calls.prepare(body)
            except protocol.ProtocolError as exc:
                gateway.limits.release(limited)
                return await refused(ApiError(400, exc.message, "invalid_request_error", exc.code, param=exc.param))
            if rewritten is not None:
                upstream_body, emulated = rewritten, True
        if upstream_body.get("stream"):
            upstream = {**upstream_body, "stream_options": {"include_usage": True}}
            try:
                response = await gateway.post(path, upstream, adapter, stream=True)
                if response.status_code != 200:
                    data = json.loads(await response.aread())
                    await response.aclose()
                    raise backend_refused(response.status_code, data)
            except (ApiError, *BACKEND_ERRORS, ValueError) as exc:
                gateway.limits.release(limited)
                return await refused(exc if isinstance(exc, ApiError) else backend_failed(), prompt_text, True)
            return StreamingResponse(
                _stream(gateway, caller, model, digest, route, response, body, started, outcome, prompt_text,
                        limited),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            response = await gateway.post(path, upstream_body, adapter)
            data = response.json()
            if response.status_code != 200:
                raise backend_refused(response.status_code, data)
            if emulated:
                data = tool_calls.read_reply(data)
            if route == "text":
                for choice in data.get("choices", []):
                    protocol.legacy_logprobs(choice, len(prompt_text))
            usage = data.get("usage") or {}
            outcome.path = gateway.backend.served_by(adapter, data.get("system_fingerprint"))
            data["model"] = model  # the name the client asked for, whatever the engine calls itself
            outcome.response_id = str(data.get("id") or "")
            outcome.prompt_tokens = int(usage.get("prompt_tokens", 0))
            outcome.completion_tokens = int(usage.get("completion_tokens", 0))
            filtering = gateway.policy.output_filter != "off"  # the scrubber is slow: off the event loop
            for choice in data.get("choices", []):
                holder, key = (choice.get("message") or {}, "content") if route == "chat" else (choice, "text")
                piece = holder.get(key) or ""
                if filtering and piece:
                    holder[key] = piece = await asyncio.to_thread(gateway.filter_output, piece, outcome)
                outcome.text.append(piece)
                for call in holder.get("tool_calls") or []:  # what the model asked to call is audited too
                    outcome.text.append(json.dumps(call.get("function", {}), sort_keys=True))
        except ApiError as exc:
            return await refused(exc, prompt_text)
        except (*BACKEND_ERRORS, ValueError) as exc:
            return await refused(backend_failed(), prompt_text, error=f"backend failed: {type(exc).__name__}")
        finally:
            gateway.limits.release(limited)
        try:  # the answer leaves only once its event is durable
            await gateway.record(caller, model, digest, route, started, outcome, prompt_text, False)
        except AuditUnavailable as exc:
            return error_response(audit_unavailable(str(exc)))
        if body.get("stream"):  # tools on a template without them: the whole answer, as a stream
            chunks = tool_calls.as_stream(data, bool((body.get("stream_options") or {}).get("include_usage")))
            events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
            return StreamingResponse(iter(events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return JSONResponse(data)

    completion_routes(app, complete)
    return app


async def _stream(gateway: Gateway, caller: Caller, model: str, digest: str, route: str, response: BackendResponse,
                  body: dict, started: float, outcome: Outcome, prompt_text: str,
                  limited: str) -> AsyncIterator[bytes]:
    """Pass the backend's events through as they come, counting usage; the backend was asked for usage always,
    and its usage chunk is forwarded only when the client asked for it too."""
    adapter = None if model == gateway.model else model
    offsets: dict[int, int] = {}  # completions logprobs: each choice's text offset so far
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    redact = gateway.policy.output_filter == "redact"
    held: list[dict] = []  # with redaction, the chunks wait for the whole text
    finished = released = recorded = False
    try:
        async with contextlib.aclosing(response.aiter_lines()) as lines, _closing(response):
            async for line in lines:
                if not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    finished = True
                    break
                chunk = json.loads(payload)
                outcome.path = gateway.backend.served_by(adapter, chunk.get("system_fingerprint")) or outcome.path
                chunk["model"] = model
                outcome.response_id = outcome.response_id or str(chunk.get("id") or "")
                usage = chunk.get("usage")
                if usage:
                    outcome.prompt_tokens = int(usage.get("prompt_tokens", 0))
                    outcome.completion_tokens = int(usage.get("completion_tokens", 0))
                for choice in chunk.get("choices", []):
                    if route == "text":
                        offsets[choice.get("index", 0)] = protocol.legacy_logprobs(
                            choice, offsets.get(choice.get("index", 0), len(prompt_text)))
                    delta = choice.get("delta") or {}
                    piece = delta.get("content") if route == "chat" else choice.get("text")
                    if piece:
                        outcome.text.append(piece)
                    for call in delta.get("tool_calls") or [] if route == "chat" else []:
                        function = call.get("function") or {}
                        outcome.text.append(f"{function.get('name') or ''}{function.get('arguments') or ''}")
                if redact and chunk.get("choices"):
                    held.append(chunk)
                    continue
                if usage and not chunk.get("choices") and not wants_usage:
                    continue
                yield f"data: {json.dumps(chunk)}\n\n".encode()
        if not finished:
            raise httpx.RemoteProtocolError("the backend's stream ended without [DONE]")
        if redact:
            text = await asyncio.to_thread(gateway.filter_output, "".join(outcome.text), outcome)
            for chunk in _redacted(held, text, route):
                yield f"data: {json.dumps(chunk)}\n\n".encode()
        elif gateway.policy.output_filter == "flag":
            await asyncio.to_thread(gateway.filter_output, "".join(outcome.text), outcome)
        gateway.limits.release(limited)
        released = True
        recorded = True
        try:  # the stream is complete only once its event is durable
            await gateway.record(caller, model, digest, route, started, outcome, prompt_text, True)
        except AuditUnavailable as exc:
            yield b"data: " + json.dumps(audit_unavailable(str(exc)).body()).encode() + b"\n\n"
            return
        yield b"data: [DONE]\n\n"
    except (*BACKEND_ERRORS, ValueError) as exc:
        outcome.status, outcome.error = 502, f"backend failed mid-stream: {type(exc).__name__}"
        error = {"message": "the model backend stopped while answering; it is being restarted, try again",
                 "type": "server_error", "param": None, "code": "backend_unavailable"}
        yield b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
    finally:
        if not released:
            gateway.limits.release(limited)
        if not recorded:
            with contextlib.suppress(AuditUnavailable):
                await gateway.record(caller, model, digest, route, started, outcome, prompt_text, True)


@contextlib.asynccontextmanager
async def _closing(response: BackendResponse):
    try:
        yield response
    finally:
        await response.aclose()


def _redacted(held: list[dict], text: str, route: str) -> list[dict]:
    """The held chunks as one chunk carrying the whole redacted text, then one that carries the finish reason."""
    if not held:
        return []
    first, last = held[0], held[-1]
    finish = next((c["finish_reason"] for c in reversed(last["choices"]) if c.get("finish_reason")), "stop")
    if route == "chat":
        content = {"delta": {"role": "assistant", "content": text}}
        ending = {"delta": {}}
    else:
        content, ending = {"text": text}, {"text": ""}
    return [{**first, "choices": [{"index": 0, **content, "finish_reason": None}]},
            {**last, "choices": [{"index": 0, **ending, "finish_reason": finish}]}]
