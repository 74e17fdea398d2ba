"""Shared by the serving benchmarks: an appliance home with an approved adapter (after `make demo`: var/demo),
API tokens for its engineer, and `appliance serve` started on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def parser(doc: str):
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "demo",
                        help="an appliance home with an approved adapter (default: the demo's)")
    parser.add_argument("--user", default="engineer", help="the user the benchmark's API tokens belong to")
    return parser


def tokens(home: Path, user: str, count: int) -> list[str]:
    """New API tokens for `user`, created through the library as the appliance (recorded in the audit trail)."""
    os.environ["APPLIANCE_HOME"] = str(home)
    from appliance.config import load_settings
    from appliance.context import Actor, Context
    from appliance.db import connect
    from appliance.identity.tokens import create

    settings = load_settings()
    ctx = Context(settings, connect(settings)).acting_as(Actor("bench", "admin", "system"))
    return [create(ctx, user)[0] for _ in range(count)]


def approved_adapter(home: Path) -> str:
    from appliance.artifacts import registry
    from appliance.config import load_settings
    from appliance.db import connect

    os.environ["APPLIANCE_HOME"] = str(home)
    found = [a.name for a in registry.list_artifacts(connect(load_settings())) if a.status == "approved"]
    if not found:
        raise SystemExit(f"{home}: no approved adapter; run `make demo` first, or pass --home")
    return found[0]


class Direct:
    """The engine behind a running gateway, reached straight on its Unix socket as the gateway reaches it: the
    request body the gateway would send for a model name (llama-server: the base's name and the `lora` field)."""

    def __init__(self, home: Path, backend: str) -> None:
        self.backend = backend
        if backend == "llamacpp-binding":
            self.socket, self.ids = home / "run" / "backend.sock", {}
            return
        engines = sorted((home / "run" / "llama-server").glob("*.sock"), key=lambda p: p.stat().st_mtime)
        if not engines:
            raise SystemExit(f"{home}/run/llama-server: no engine socket")
        self.socket = engines[-1]
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://engine") as c:
            listed = c.get("/lora-adapters").json()
            self.base = c.get("/props").json().get("model_alias", "")
        self.ids = {Path(a["path"]).parent.name: a["id"] for a in listed}

    def body(self, model: str, body: dict) -> dict:
        if self.backend == "llamacpp-binding":
            return {**body, "model": model}
        return {**body, "model": self.base,
                "lora": [{"id": i, "scale": 1.0 if name == model else 0.0} for name, i in self.ids.items()]}

    def client(self, timeout: float = 600) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://engine",
                            timeout=timeout)

    def async_client(self, timeout: float = 600) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(
            uds=str(self.socket), limits=httpx.Limits(max_keepalive_connections=0)),  # as the gateway connects
            base_url="http://engine", timeout=timeout)


@contextmanager
def gateway(home: Path, policies: Path | None = None, backend: str = "llamacpp", model: str = "smollm2"):
    """`appliance serve` on HOME with BACKEND serving MODEL; POLICIES, when given, is the policy folder it runs
    under (APPLIANCE_POLICIES). Yields the gateway's URL and the engine behind it (`Direct`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(Path(sys.executable).with_name("appliance")), "serve", "--model", model, "--port", str(port),
            "--backend", backend]
    env = {**os.environ, "APPLIANCE_HOME": str(home), **({"APPLIANCE_POLICIES": str(policies)} if policies else {})}
    log = open(home / "logs" / "bench-gateway.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"appliance serve exited: see {log.name}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("appliance serve did not become ready")
            time.sleep(0.3)
        yield url, Direct(home, backend)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
