"""What a running gateway says of itself: its health, whether it is ready, and its own Prometheus counters,
read over HTTP from its `/healthz`, `/readyz` and `/metrics` routes (parsed with prometheus_client's parser,
the format's reference implementation)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ApplianceError

# The families an operator reads first; the rest of /metrics (latency buckets, Python's own) stays in Prometheus.
SHOWN = ("appliance_adapters_loaded", "appliance_requests_total", "appliance_backend_restarts_total",
         "appliance_tokens_total")


class GatewayDown(ApplianceError):
    """The gateway does not answer at the address given."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float

    @property
    def label_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


@dataclass(frozen=True)
class GatewayStatus:
    url: str
    ready: bool
    health: dict
    samples: list[Sample]  # the SHOWN families' samples, in the order /metrics gives them

    def total(self, name: str) -> float:
        """A family's samples summed over their labels (0 when it has none yet)."""
        return sum(s.value for s in self.samples if s.name == name)


def parse_metrics(exposition: str) -> list[Sample]:
    """The SHOWN families' samples in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return [Sample(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(exposition)
            for s in family.samples if s.name in SHOWN]


def probe(url: str, timeout: float = 2.0) -> GatewayStatus:
    import httpx

    url = url.rstrip("/")
    try:
        health = httpx.get(url + "/healthz", timeout=timeout).json()
        ready = httpx.get(url + "/readyz", timeout=timeout).status_code == 200
        exposition = httpx.get(url + "/metrics", timeout=timeout).text
    except (httpx.HTTPError, ValueError) as exc:
        raise GatewayDown(f"the gateway does not answer at {url} ({type(exc).__name__}); start it with "
                          "`appliance serve`") from None
    return GatewayStatus(url, ready, health, parse_metrics(exposition))
