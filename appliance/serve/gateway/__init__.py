"""The OpenAI-compatible gateway (FastAPI + uvicorn; aiohttp to the backend for completions, streams passed
through; httpx for the backend's health and adapter calls).

Every request: bearer token (401), the model is the base or an approved, verified, loaded adapter that the
token may use (403), the request within the whitelist of OpenAI fields (`protocol.py`, 400 naming the field),
per-user rate and concurrency limits (429 with Retry-After), body and max_tokens limits (413, 400 or clamped),
then the backend; one audit event per request (token owner, model, adapter digest, token counts, latency,
outcome, and the text as the serving policy says). The adapter set follows the audit trail: an artifact whose
release the trail proves is verified and loaded, a revoked one refused at once and unloaded, without a restart.
A backend that dies is restarted; a stream it was serving ends with an OpenAI-style error event.

An answer leaves only once its audit event is durable (`audit_writer.py`); while the trail cannot record, requests
are refused with 503 and `/readyz` says not ready. An adapter is loaded only on its makers' and an officer's signed
statements, read from the trail as the gateway verifies it against its anchors (`audit/follow.py`,
`artifacts/release.py`), whatever its status column says. The gateway never signs audit checkpoints.

    app.py       routes, admission, the answer        core.py     the gateway's state and backend supervision
    scope.py     one request: limits and its event    stream.py   a streamed answer passed through
    adapters.py  the trail-following adapter set     auth.py     bearer tokens, kept for sync_seconds
    limits.py    per-user limits                      metrics.py  Prometheus counters
    errors.py    OpenAI-style errors                  upstream.py the backend's response
"""

from appliance.serve.gateway.adapters import GATEWAY
from appliance.serve.gateway.app import create_app
from appliance.serve.gateway.core import Gateway
from appliance.serve.gateway.errors import ApiError
from appliance.serve.gateway.limits import RateLimiter
from appliance.serve.gateway.scope import Outcome

__all__ = ["GATEWAY", "ApiError", "Gateway", "Outcome", "RateLimiter", "create_app"]
