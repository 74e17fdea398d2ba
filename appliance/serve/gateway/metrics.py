"""The gateway's Prometheus metrics (a model label is only ever a served model's name)."""

from __future__ import annotations


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
