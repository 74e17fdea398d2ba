"""Backend processes behind the gateway: llama.cpp (the appliance's own backend over a Unix socket, CPU) and
vLLM (one server with runtime LoRA loading, GPU). Both speak the OpenAI protocol, so the gateway is the same;
each knows how to start, check, load and unload adapters, and stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from appliance import offline
from appliance.errors import InputError


@dataclass(frozen=True)
class AdapterFiles:
    name: str
    directory: Path  # the verified artifact directory
    digest: str  # the artifact's manifest digest


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_TOKEN")}
    env.update(offline.OFFLINE_ENV)
    env.update(extra or {})
    return env


@dataclass
class Route:
    """A request's way to the backend: the aiohttp session to post on (None: the gateway's own), the body, and
    what to call once its response is closed."""
    session: object
    body: dict
    done: object = None

    def close(self) -> None:
        if self.done is not None:
            done, self.done = self.done, None
            done()


class Backend:
    """A child process speaking OpenAI's protocol; `transport` reaches it."""

    kind = ""
    model = ""
    proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return _child_env()

    def transport(self) -> httpx.AsyncBaseTransport:
        raise NotImplementedError

    base_url = "http://backend"

    def headers(self) -> dict[str, str]:
        """Headers every request to the backend carries (vLLM's API key)."""
        return {}

    def connector(self):
        """The aiohttp connector the gateway's completion requests use (its hot path; httpx serves the rest)."""
        import aiohttp

        return aiohttp.TCPConnector(limit=0, force_close=False)

    def start(self, log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            os.chmod(log, 0o600)
            self.proc = subprocess.Popen(self.command(), env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        terminate(self.proc, grace)

    async def load(self, client: httpx.AsyncClient, adapter: AdapterFiles) -> None:
        raise NotImplementedError

    async def unload(self, client: httpx.AsyncClient, name: str) -> None:
        raise NotImplementedError

    async def commit(self) -> str | None:
        """After loads and unloads: make them take effect. None, or why they could not (nothing changed)."""
        return None

    # The OpenAI fields this backend honours (protocol.py refuses the others); None: all the gateway accepts.
    supported: frozenset[str] | None = None

    async def native_tools(self) -> bool:
        """Whether the backend turns `tools` into calls itself (else the gateway does: tool_calls.py)."""
        return True

    def served_by(self, adapter: str | None, fingerprint) -> str:
        """What the audit event records as the path that answered (the binding says base, lora or merged)."""
        return str(fingerprint or "")

    def route(self, adapter: str | None, body: dict) -> Route:
        """Where a request for the base (`adapter` None) or an adapter goes, and the body it goes with."""
        return Route(None, {**body, "model": adapter or self.model})

    async def healthy(self, client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get("/health", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False


class BindingBackend(Backend):
    """llama-cpp-python's binding (appliance/serve/binding_server.py): one sequence at a time, adapters share one
    base in memory, a hot adapter is merged into a copy. Kept beside llama-server for comparison (`--backend
    llamacpp-binding`, bench/serve_load.py)."""

    kind = "llamacpp-binding"
    supported = frozenset({"model", "messages", "prompt", "max_tokens", "stream", "stream_options", "temperature",
                           "top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "user"})

    def __init__(self, model: str, gguf: Path, socket: Path, threads: int, n_ctx: int, *, merge_after: int = 0,
                 hot_window: float = 120.0) -> None:
        self.model, self.gguf, self.socket, self.threads, self.n_ctx = model, gguf, socket, threads, n_ctx
        self.merge_after, self.hot_window = merge_after, hot_window

    def command(self) -> list[str]:
        return [sys.executable, "-m", "appliance.serve.binding_server", "--socket", str(self.socket),
                "--model", self.model, "--gguf", str(self.gguf), "--threads", str(self.threads),
                "--ctx", str(self.n_ctx),
                "--merge-dir", str(self.socket.parent / "merged"), "--merge-after", str(self.merge_after),
                "--hot-window", str(self.hot_window)]

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(uds=str(self.socket))

    def connector(self):
        import aiohttp

        return aiohttp.UnixConnector(path=str(self.socket), limit=0)

    async def load(self, client: httpx.AsyncClient, adapter: AdapterFiles) -> None:
        response = await client.put(f"/adapters/{adapter.name}", timeout=120.0,
                                    json={"path": str(adapter.directory / "adapter.gguf"), "digest": adapter.digest})
        response.raise_for_status()

    async def unload(self, client: httpx.AsyncClient, name: str) -> None:
        response = await client.delete(f"/adapters/{name}", timeout=60.0)
        if response.status_code not in (200, 404):
            response.raise_for_status()


@dataclass(frozen=True)
class VllmOptions:
    """What `vllm serve` is started with; `max_loras` adapters are resident on the GPU at once."""
    max_loras: int = 4
    max_lora_rank: int = 64
    max_cpu_loras: int = 16
    gpu_memory_utilization: float = 0.85
    max_model_len: int = 4096
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.max_loras <= self.max_cpu_loras:
            raise InputError("vLLM: max_loras must be at least 1 and at most max_cpu_loras")
        if self.max_lora_rank not in (8, 16, 32, 64, 128, 256, 320, 512):
            raise InputError(f"vLLM: max_lora_rank {self.max_lora_rank} is not one vLLM supports "
                             "(8, 16, 32, 64, 128, 256, 320, 512)")
        if not 0.1 <= self.gpu_memory_utilization <= 0.99:
            raise InputError("vLLM: gpu_memory_utilization must be between 0.1 and 0.99")


class VllmBackend(Backend):
    """`vllm serve` of the base model's safetensors copy with LoRA enabled; adapters (the PEFT directory of each
    verified artifact) are registered by name at run time through vLLM's load/unload endpoints.

    vLLM listens on a Unix socket in a 0700 folder (not a TCP port any local process could reach) and
    also requires an API key that only this gateway holds (made afresh at each start, passed through the
    environment, never on a command line): no other process can query it unaudited or load an adapter."""

    kind = "vllm"
    base_url = "http://vllm"

    def __init__(self, model: str, hf_dir: Path, run_dir: Path, options: VllmOptions = VllmOptions(),
                 executable: str | None = None) -> None:
        import secrets

        self.model, self.hf_dir, self.options = model, hf_dir, options
        self.folder = run_dir / "vllm"
        self.socket = self.folder / "server.sock"
        self.executable = executable or str(Path(sys.executable).with_name("vllm"))
        self.api_key = secrets.token_urlsafe(32)

    def start(self, log: Path) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        if self.socket.exists():
            self.socket.unlink()
        super().start(log)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def native_tools(self) -> bool:
        # vLLM parses tool calls only with a parser chosen for the model family (--tool-call-parser); the
        # gateway's schema-constrained calls (vLLM honours response_format json_schema) work with any model.
        return False

    def command(self) -> list[str]:
        o = self.options
        return [self.executable, "serve", str(self.hf_dir), "--served-model-name", self.model,
                "--uds", str(self.socket), "--enable-lora", "--max-loras", str(o.max_loras),
                "--max-lora-rank", str(o.max_lora_rank), "--max-cpu-loras", str(o.max_cpu_loras),
                "--gpu-memory-utilization", str(o.gpu_memory_utilization), "--max-model-len", str(o.max_model_len),
                "--dtype", o.dtype, "--disable-log-requests", "--disable-uvicorn-access-log"]

    def env(self) -> dict[str, str]:
        return _child_env({"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_NO_USAGE_STATS": "1",
                           "VLLM_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1", "VLLM_API_KEY": self.api_key})

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(uds=str(self.socket))

    def connector(self):
        import aiohttp

        return aiohttp.UnixConnector(path=str(self.socket), limit=0)

    async def load(self, client: httpx.AsyncClient, adapter: AdapterFiles) -> None:
        response = await client.post("/v1/load_lora_adapter", timeout=300.0,
                                     json={"lora_name": adapter.name, "lora_path": str(adapter.directory / "adapter")})
        response.raise_for_status()

    async def unload(self, client: httpx.AsyncClient, name: str) -> None:
        response = await client.post("/v1/unload_lora_adapter", json={"lora_name": name}, timeout=60.0)
        if response.status_code not in (200, 404):
            response.raise_for_status()


def terminate(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, and SIGKILL after `grace` seconds, for a child that is still running."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(check, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False
