"""Per-user rate and concurrency limits: every token of a user draws on the same ones."""

from __future__ import annotations

import math
import time

from appliance.serve.gateway.errors import ApiError


class RateLimiter:
    """Per user: a bucket of `burst` requests refilled at `rate` per minute, and a cap on requests in flight; a
    user's own limits (`users limit`), where set, replace the policy's field by field."""

    def __init__(self, rate_per_minute: float, burst: int, max_concurrent: int) -> None:
        self.rate, self.burst, self.max_concurrent = rate_per_minute / 60.0, burst, max_concurrent
        self.buckets: dict[str, tuple[float, float]] = {}
        self.in_flight: dict[str, int] = {}

    def acquire(self, key: str, own=None) -> None:
        """Take a slot for `key` (a user) under `own` limits (identity.access.UserLimits) or the policy's."""
        rate = own.requests_per_minute / 60.0 if own and own.requests_per_minute else self.rate
        burst = own.burst if own and own.burst else self.burst
        max_concurrent = own.max_concurrent if own and own.max_concurrent else self.max_concurrent
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if self.in_flight.get(key, 0) >= max_concurrent:
            self.buckets[key] = (tokens, now)
            raise ApiError(429, f"too many requests in flight for this user (at most {max_concurrent}, across "
                                "all their tokens)", "rate_limit_error", "concurrency_limit", {"Retry-After": "1"})
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / rate)
            raise ApiError(429, f"rate limit: {burst} requests, refilled at {rate * 60:g} a minute, for this user "
                                "across all their tokens", "rate_limit_error", "rate_limit_exceeded",
                           {"Retry-After": str(max(1, wait))})
        self.buckets[key] = (tokens - 1.0, now)
        self.in_flight[key] = self.in_flight.get(key, 0) + 1

    def release(self, key: str) -> None:
        self.in_flight[key] = max(0, self.in_flight.get(key, 0) - 1)

