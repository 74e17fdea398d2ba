"""A streamed answer passed through as the backend sends it, its usage and text noted for the audit event; the
stream is complete (`[DONE]`) only once that event is durable."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx

from appliance.serve import protocol
from appliance.serve.audit_writer import AuditUnavailable
from appliance.serve.gateway.errors import BACKEND_ERRORS, audit_unavailable
from appliance.serve.gateway.scope import RequestScope
from appliance.serve.gateway.upstream import BackendResponse


def _sse(chunk: dict) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def passed_through(gateway, scope: RequestScope, response: BackendResponse,
                         body: dict) -> AsyncIterator[bytes]:
    """The backend was asked for usage always; its usage chunk is forwarded only when the client asked for it
    too. With the redacting output filter the chunks wait for the whole text."""
    route, outcome = scope.route, scope.outcome
    offsets: dict[int, int] = {}  # completions logprobs: each choice's text offset so far
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    redact = gateway.policy.output_filter == "redact"
    held: list[dict] = []
    finished = False
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
                outcome.path = gateway.backend.served_by(scope.adapter, chunk.get("system_fingerprint")) \
                    or outcome.path
                chunk["model"] = scope.model
                outcome.response_id = outcome.response_id or str(chunk.get("id") or "")
                usage = chunk.get("usage")
                if usage:
                    outcome.prompt_tokens = int(usage.get("prompt_tokens", 0))
                    outcome.completion_tokens = int(usage.get("completion_tokens", 0))
                for choice in chunk.get("choices", []):
                    _note(scope, choice, offsets)
                if redact and chunk.get("choices"):
                    held.append(chunk)
                    continue
                if usage and not chunk.get("choices") and not wants_usage:
                    continue
                yield _sse(chunk)
        if not finished:
            raise httpx.RemoteProtocolError("the backend's stream ended without [DONE]")
        if redact:
            text = await asyncio.to_thread(gateway.filter_output, "".join(outcome.text), outcome)
            for chunk in _redacted(held, text, route):
                yield _sse(chunk)
        elif gateway.policy.output_filter == "flag":
            await asyncio.to_thread(gateway.filter_output, "".join(outcome.text), outcome)
        try:  # the stream is complete only once its event is durable
            await scope.record()
        except AuditUnavailable as exc:
            yield _sse(audit_unavailable(str(exc)).body())
            return
        yield b"data: [DONE]\n\n"
    except (*BACKEND_ERRORS, ValueError) as exc:
        outcome.status, outcome.error = 502, f"backend failed mid-stream: {type(exc).__name__}"
        error = {"message": "the model backend stopped while answering; it is being restarted, try again",
                 "type": "server_error", "param": None, "code": "backend_unavailable"}
        yield _sse({"error": error})
    finally:
        await scope.close()


def _note(scope: RequestScope, choice: dict, offsets: dict[int, int]) -> None:
    """One streamed choice's text (and tool-call pieces) into the outcome; completions logprobs reshaped."""
    if scope.route == "text":
        index = choice.get("index", 0)
        offsets[index] = protocol.legacy_logprobs(choice, offsets.get(index, len(scope.prompt_text)))
        if choice.get("text"):
            scope.outcome.text.append(choice["text"])
        return
    delta = choice.get("delta") or {}
    if delta.get("content"):
        scope.outcome.text.append(delta["content"])
    for call in delta.get("tool_calls") or []:
        function = call.get("function") or {}
        scope.outcome.text.append(f"{function.get('name') or ''}{function.get('arguments') or ''}")


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
