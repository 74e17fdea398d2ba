"""The gateway's HTTP routes (FastAPI): health, metrics, models, and the two completion routes. A completion is
admitted (audit writable, token, body, model, protocol, limits), sent to the backend for the base or the adapter
it names, and answered only once its audit event is durable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from fastapi import Request

from appliance.serve import protocol, tool_calls
from appliance.serve.audit_writer import AuditUnavailable
from appliance.serve.gateway.auth import Caller
from appliance.serve.gateway.core import Gateway
from appliance.serve.gateway.errors import (
    BACKEND_ERRORS,
    ApiError,
    audit_unavailable,
    backend_failed,
    backend_refused,
)
from appliance.serve.gateway.scope import RequestScope, error_response
from appliance.serve.gateway.stream import passed_through
from appliance.serve.openai_routes import completion_routes
from appliance.serve.policy import ServingPolicy

SSE = {"media_type": "text/event-stream", "headers": {"Cache-Control": "no-cache"}}


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


async def admit(gateway: Gateway, scope: RequestScope, request: Request) -> dict:
    """The checked body, or ApiError: the trail can record, the token is valid (before the body is read), the
    body fits, the model is served and allowed, the protocol is kept, the limits leave room."""
    try:
        gateway.audit.check()
    except AuditUnavailable as exc:
        raise audit_unavailable(str(exc)) from None
    scope.caller = await gateway.caller(request.headers.get("authorization"))
    raw = await read_body(request, gateway.policy)
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON", "invalid_request_error", "invalid_json") from None
    scope.model = parsed.get("model", "") if isinstance(parsed, dict) else ""
    scope.digest = gateway.check_model(scope.caller, scope.model)
    scope.outcome.user = protocol.user_of(parsed)
    try:
        checked = protocol.parse(parsed, scope.route, gateway.policy, gateway.backend.supported)
    except protocol.ProtocolError as exc:
        raise ApiError(400, exc.message, "invalid_request_error", exc.code, param=exc.param) from None
    scope.outcome.clamped, scope.prompt_text = checked.clamped, checked.prompt_text
    scope.stream = bool(checked.body.get("stream"))
    scope.acquire()
    if not gateway.ready.is_set():
        try:
            await asyncio.wait_for(gateway.ready.wait(), 120)
        except TimeoutError:
            raise ApiError(503, "the model backend is restarting; try again", "server_error",
                           "backend_unavailable", {"Retry-After": "5"}) from None
        scope.digest = gateway.check_model(scope.caller, scope.model)  # an adapter may be gone after the restart
    return checked.body


async def _read(gateway: Gateway, scope: RequestScope, data: dict, emulated: bool) -> dict:
    """The backend's whole answer as the client gets it, its usage and text noted for the audit event."""
    outcome, route = scope.outcome, scope.route
    if emulated:
        data = tool_calls.read_reply(data)
    if route == "text":
        for choice in data.get("choices", []):
            protocol.legacy_logprobs(choice, len(scope.prompt_text))
    usage = data.get("usage") or {}
    outcome.path = gateway.backend.served_by(scope.adapter, data.get("system_fingerprint"))
    data["model"] = scope.model  # the name the client asked for, whatever the backend calls itself
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
    return data


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

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    async def names_adapters(request: Request) -> bool:
        """Which adapters are served, and their traffic, is told to a valid token only."""
        header = request.headers.get("authorization")
        if not header:
            return False
        try:
            await gateway.caller(header)
        except ApiError:
            return False
        return True

    @app.get("/readyz")
    async def readyz(request: Request):
        audit = gateway.audit.failure or "ok"
        ready = audit == "ok" and gateway.ready.is_set() and await gateway.backend.healthy(gateway.client)
        body = {"ready": ready, "backend": gateway.backend.kind, "model": gateway.model,
                "adapters_loaded": len(gateway.loaded), "audit": audit}
        if await names_adapters(request):
            body["adapters"] = sorted(gateway.loaded)
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics(request: Request):
        text = gateway.metrics.render()
        text = text.decode() if isinstance(text, bytes) else text
        if not await names_adapters(request):  # the base model's series and the totals, no adapter's name
            base = f'model="{gateway.model}"'
            text = "".join(line for line in text.splitlines(keepends=True)
                           if 'model="' not in line or base in line)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

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
        scope = RequestScope(gateway, route, request)
        try:
            return await answer(scope, route, request)
        except BaseException:  # cancelled (the client went away) or a bug: the slot is not kept
            scope.release()
            raise

    async def answer(scope: RequestScope, route: str, request: Request):
        from fastapi.responses import JSONResponse

        try:
            body = await admit(gateway, scope, request)
            upstream, emulated = body, False
            if route == "chat" and not await gateway.backend.native_tools():
                try:
                    rewritten = tool_calls.prepare(body)
                except protocol.ProtocolError as exc:
                    raise ApiError(400, exc.message, "invalid_request_error", exc.code, param=exc.param) from None
                if rewritten is not None:
                    upstream, emulated = rewritten, True
        except ApiError as exc:
            return await scope.refuse(exc)
        path = "/v1/chat/completions" if route == "chat" else "/v1/completions"
        if upstream.get("stream"):
            try:
                response = await gateway.post(path, {**upstream, "stream_options": {"include_usage": True}},
                                              scope.adapter, stream=True)
                if response.status_code != 200:
                    data = json.loads(await response.aread())
                    await response.aclose()
                    raise backend_refused(response.status_code, data)
            except (ApiError, *BACKEND_ERRORS, ValueError) as exc:
                return await scope.refuse(exc if isinstance(exc, ApiError) else backend_failed())
            return StreamingResponse(passed_through(gateway, scope, response, body), **SSE)
        try:
            response = await gateway.post(path, upstream, scope.adapter)
            data = response.json()
            if response.status_code != 200:
                raise backend_refused(response.status_code, data)
            data = await _read(gateway, scope, data, emulated)
        except ApiError as exc:
            return await scope.refuse(exc)
        except (*BACKEND_ERRORS, ValueError) as exc:
            return await scope.refuse(backend_failed(), error=f"backend failed: {type(exc).__name__}")
        try:  # the answer leaves only once its event is durable
            await scope.record()
        except AuditUnavailable as exc:
            return error_response(audit_unavailable(str(exc)))
        if body.get("stream"):  # tools on a template without them: the whole answer, as a stream
            chunks = tool_calls.as_stream(data, bool((body.get("stream_options") or {}).get("include_usage")))
            events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
            return StreamingResponse(iter(events), **SSE)
        return JSONResponse(data)

    completion_routes(app, complete)
    return app
