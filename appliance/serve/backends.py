"""Backend processes behind the gateway: llama.cpp (the appliance's own backend over a Unix socket, CPU) and
vLLM (one engine with runtime LoRA loading, GPU). Both speak the OpenAI protocol, so the gateway is the same;
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


class Backend:
    """A child process speaking OpenAI's protocol; `transport` reaches it."""

    kind = ""
    proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return _child_env()

    def transport(self) -> httpx.AsyncBaseTransport:
        raise NotImplementedError

    base_url = "http://backend"

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
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def load(self, client: httpx.AsyncClient, adapter: AdapterFiles) -> None:
        raise NotImplementedError

    async def unload(self, client: httpx.AsyncClient, name: str) -> None:
        raise NotImplementedError

    async def healthy(self, client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get("/health", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False


class LlamaCppBackend(Backend):
    """The appliance's llama.cpp backend (appliance/serve/backend.py): adapters share one base in memory."""

    kind = "llamacpp"

    def __init__(self, model: str, gguf: Path, socket: Path, threads: int, n_ctx: int, *, merge_after: int = 0,
                 hot_window: float = 120.0) -> None:
        self.model, self.gguf, self.socket, self.threads, self.n_ctx = model, gguf, socket, threads, n_ctx
        self.merge_after, self.hot_window = merge_after, hot_window

    def command(self) -> list[str]:
        return [sys.executable, "-m", "appliance.serve.backend", "--socket", str(self.socket), "--model", self.model,
                "--gguf", str(self.gguf), "--threads", str(self.threads), "--ctx", str(self.n_ctx),
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
    verified artifact) are registered by name at run time through vLLM's load/unload endpoints."""

    kind = "vllm"

    def __init__(self, model: str, hf_dir: Path, port: int, options: VllmOptions = VllmOptions(),
                 executable: str | None = None) -> None:
        self.model, self.hf_dir, self.port, self.options = model, hf_dir, port, options
        self.executable = executable or str(Path(sys.executable).with_name("vllm"))
        self.base_url = f"http://127.0.0.1:{port}"

    def command(self) -> list[str]:
        o = self.options
        return [self.executable, "serve", str(self.hf_dir), "--served-model-name", self.model,
                "--host", "127.0.0.1", "--port", str(self.port), "--enable-lora", "--max-loras", str(o.max_loras),
                "--max-lora-rank", str(o.max_lora_rank), "--max-cpu-loras", str(o.max_cpu_loras),
                "--gpu-memory-utilization", str(o.gpu_memory_utilization), "--max-model-len", str(o.max_model_len),
                "--dtype", o.dtype, "--disable-log-requests", "--disable-uvicorn-access-log"]

    def env(self) -> dict[str, str]:
        return _child_env({"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_NO_USAGE_STATS": "1",
                           "VLLM_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1"})

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport()

    async def load(self, client: httpx.AsyncClient, adapter: AdapterFiles) -> None:
        response = await client.post("/v1/load_lora_adapter", timeout=300.0,
                                     json={"lora_name": adapter.name, "lora_path": str(adapter.directory / "adapter")})
        response.raise_for_status()

    async def unload(self, client: httpx.AsyncClient, name: str) -> None:
        response = await client.post("/v1/unload_lora_adapter", json={"lora_name": name}, timeout=60.0)
        if response.status_code not in (200, 404):
            response.raise_for_status()


def wait_until(check, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False
