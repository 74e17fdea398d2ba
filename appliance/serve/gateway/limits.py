"""Per-token rate and concurrency limits."""

from __future__ import annotations

import math
import time

from appliance.serve.gateway.errors import ApiError


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

