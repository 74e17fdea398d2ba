"""The gateway's state: the backend it supervises (restarted when it dies), the adapter set it follows, who may
ask, the limits, the audit writer, and what the trail keeps of each request's text."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import threading
import time

import aiohttp
import httpx

from appliance.audit.events import Event
from appliance.context import Context
from appliance.serve.audit_writer import AuditWriter
from appliance.serve.auth_failures import AuthFailures
from appliance.serve.backends import Backend
from appliance.serve.gateway.adapters import GATEWAY, AdapterSet
from appliance.serve.gateway.auth import Authenticator, Caller
from appliance.serve.gateway.errors import ApiError
from appliance.serve.gateway.limits import RateLimiter
from appliance.serve.gateway.metrics import Metrics
from appliance.serve.gateway.upstream import BackendResponse
from appliance.serve.policy import ServingPolicy

log = logging.getLogger("appliance.serve")


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
        self.ready = asyncio.Event()  # set once the backend answers and its adapters are loaded
        self.audit = AuditWriter(self.ctx)
        self.adapters = AdapterSet(self.ctx, backend, model, self.audit)
        self.auth = Authenticator(self.ctx.engine, policy.sync_seconds)
        self.auth_failures = AuthFailures(self.audit, policy.server.auth_failures_every_seconds)
        self.client: httpx.AsyncClient | None = None  # health and adapter calls
        self.session: aiohttp.ClientSession | None = None  # completions: a third of httpx's cost per request
        self._tasks: list[asyncio.Task] = []
        self._scrubber = None
        self._scrub_lock = threading.Lock()

    @property
    def loaded(self) -> dict[str, str]:
        return self.adapters.loaded

    # --- life cycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        headers = self.backend.headers()
        self.client = httpx.AsyncClient(transport=self.backend.transport(), base_url=self.backend.base_url,
                                        timeout=httpx.Timeout(600.0, connect=5.0), headers=headers)
        self.session = aiohttp.ClientSession(base_url=self.backend.base_url, connector=self.backend.connector(),
                                             timeout=aiohttp.ClientTimeout(total=600.0, connect=5.0),
                                             headers=headers)
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
                previous, self.adapters.loaded = self.adapters.loaded, {}
                await self._start_backend()
                self.adapters.refused.clear()
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

    async def sync(self) -> None:
        await self.adapters.sync(self.client)
        self.metrics.adapters.set(len(self.loaded))

    # --- who asks for what ------------------------------------------------------------------------------------
    async def caller(self, header: str | None) -> Caller:
        return await self.auth.caller(header)

    def visible_models(self, caller: Caller) -> list[str]:
        adapters = [n for n in self.loaded if caller.adapters is None or n in caller.adapters]
        return [self.model, *sorted(adapters)]

    def check_model(self, caller: Caller, name) -> str:
        if not isinstance(name, str) or not name:
            raise ApiError(400, "'model' is required: the base model's name or an adapter's", "invalid_request_error",
                           "model_required", param="model")
        if name == self.model:
            return self.model_digest
        if name not in self.loaded:
            raise ApiError(404, f"the model {name!r} does not exist or is not served (approved adapters only)",
                           "invalid_request_error", "model_not_found", param="model")
        if caller.adapters is not None and name not in caller.adapters:
            raise ApiError(403, f"{caller.actor.user} may not use adapter {name!r} (with this token)",
                           "permission_error", "adapter_not_allowed", param="model")
        return self.loaded[name]

    def label(self, model: str) -> str:
        """A metric label: a served model's name, never a caller's free text."""
        return model if model == self.model or model in self.loaded else "-"

    # --- what the trail keeps of the text ---------------------------------------------------------------------
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

    def filter_output(self, text: str, outcome) -> str:
        if self.policy.output_filter == "off" or not text:
            return text
        with self._scrub_lock:
            result = self.scrubber().scrub([text])[0]
        outcome.entities = dict(result.found)
        return result.text if self.policy.output_filter == "redact" else text
