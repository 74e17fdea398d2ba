"""The gateway's OpenAI-style errors, and what a backend that failed raises."""

from __future__ import annotations

import aiohttp
import httpx

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

