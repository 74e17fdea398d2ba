"""The CPU backend: llama.cpp's own `llama-server` (built by `llama_server_build.py` from the locked sdist).

One llama-server process (an `Instance`) holds the base GGUF and every approved adapter (`--lora FILE ...
--lora-init-without-apply`, so none applies unless a request names it), decodes every open request together
(continuous batching over `parallel` slots, one unified KV cache) and listens on a Unix socket in a 0700 folder
that only the appliance's account can open; the gateway is its only client and chooses the adapter per request
with the `lora` field.

llama-server reads its adapters only at start, so a change of the adapter set starts a new instance with the new
list on a new socket; the gateway switches to it once it answers `/health`, and the old instance is stopped once
its last request has finished (at most `drain_seconds`). Requests always reach the instance whose adapter ids
they were written for: each request holds its instance (`Instance.hold`) until its response is closed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from appliance.serve.backends import AdapterFiles, Backend, Route, _child_env
from appliance.serve.backends import terminate as _terminate

log = logging.getLogger("appliance.serve")


@dataclass
class Instance:
    """One llama-server process and the adapters it was started with (their order is their `lora` id)."""
    generation: int
    socket: Path
    adapters: tuple[AdapterFiles, ...]
    proc: subprocess.Popen | None = None
    session: object = None  # aiohttp.ClientSession over the socket
    client: httpx.AsyncClient | None = None
    in_flight: int = 0
    caps: dict | None = None  # the chat template's capabilities, from /props
    retired: asyncio.Event = field(default_factory=asyncio.Event)

    def lora(self, adapter: str | None) -> list[dict]:
        """The request's `lora` field: every adapter named, the chosen one at scale 1, the rest at 0."""
        return [{"id": i, "scale": 1.0 if a.name == adapter else 0.0} for i, a in enumerate(self.adapters)]

    def has(self, adapter: str | None) -> bool:
        return adapter is None or any(a.name == adapter for a in self.adapters)

    def hold(self) -> None:
        self.in_flight += 1
        self.retired.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.retired.set()


_SOCKET_PATH_MAX = 107  # sockaddr_un's sun_path holds 108 bytes, the last one NUL


class LlamaServerBackend(Backend):
    kind = "llamacpp"

    def __init__(self, model: str, gguf: Path, run_dir: Path, threads: int, n_ctx: int, *, parallel: int = 8,
                 executable: Path | None = None, drain_seconds: float = 600.0) -> None:
        from appliance.serve.llama_server_build import find

        self.model, self.gguf, self.run_dir, self.threads = model, gguf, run_dir, threads
        self.n_ctx, self.parallel, self.drain_seconds = n_ctx, parallel, drain_seconds
        self.executable = executable or find()
        longest = self._socket(99999)
        if len(os.fsencode(longest)) > _SOCKET_PATH_MAX:
            from appliance.errors import InputError

            raise InputError(f"the instance's socket {longest} would be {len(os.fsencode(longest))} bytes long; a Unix "
                             f"socket's path may have at most {_SOCKET_PATH_MAX}: give the appliance a shorter home "
                             f"(APPLIANCE_HOME)")
        self.pending: dict[str, AdapterFiles] = {}  # the adapter set the next instance starts with
        self.instance: Instance | None = None
        self._generations = itertools.count(1)
        self._log: Path | None = None
        self._draining: set[asyncio.Task] = set()
        self._spawned: list[Instance] = []  # every instance started and not seen to exit: stop() stops them all
        self._spawning = threading.Lock()  # a start on a worker thread and stop() do not cross
        self._stopped = False
        self._dead: list[Instance] = []  # instances that died: their clients are closed at the next health check

    # --- the process ------------------------------------------------------------------------------------------
    def _socket(self, generation: int) -> Path:
        return self.run_dir / "llama-server" / f"{os.getpid()}-{generation}.sock"

    def command(self, instance: Instance) -> list[str]:
        if self.executable is None or not Path(self.executable).is_file():
            from appliance.errors import InputError

            raise InputError("llama-server is not installed: run `python -m appliance.serve.llama_server_build` "
                             "(make install does), or set APPLIANCE_LLAMA_SERVER to its path")
        cmd = [str(self.executable), "--model", str(self.gguf), "--alias", self.model, "--host", str(instance.socket),
               "--parallel", str(self.parallel), "--ctx-size", str(self.n_ctx * self.parallel), "--kv-unified",
               "--cont-batching", "--threads", str(self.threads), "--threads-batch", str(self.threads),
               "--threads-http", str(2 * self.parallel + 2), "--jinja", "--no-webui", "--offline",
               "--no-slots", "--seed", "0", "--log-verbosity", "2"]  # warnings and errors: never a prompt
        for adapter in instance.adapters:
            cmd += ["--lora", str(adapter.directory / "adapter.gguf")]
        if instance.adapters:
            cmd.append("--lora-init-without-apply")
        return cmd

    def env(self) -> dict[str, str]:
        # llama-server reads LLAMA_ARG_* as flags (tools, an API key, MCP servers...): none reach it.
        return {k: v for k, v in _child_env().items() if not k.startswith(("LLAMA_", "HF_TOKEN"))}

    def _spawn(self, adapters: tuple[AdapterFiles, ...]) -> Instance:
        folder = self.run_dir / "llama-server"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        generation = next(self._generations)
        instance = Instance(generation, self._socket(generation), adapters)
        with contextlib.suppress(FileNotFoundError):
            instance.socket.unlink()
        log_path = self._log or self.run_dir / "backend.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._spawning, open(log_path, "ab") as out:
            if self._stopped:  # a switch cancelled by the gateway's stop, still starting on its worker thread
                raise RuntimeError("the backend is stopping: no instance is started")
            os.chmod(log_path, 0o600)
            instance.proc = subprocess.Popen(self.command(instance), env=self.env(), stdout=out,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
            self._spawned = [e for e in self._spawned if e.proc.poll() is None] + [instance]
        return instance

    def start(self, log: Path) -> None:
        """A fresh instance with the pending adapter set (the first start, and after the instance died)."""
        self._log = log
        old = self.instance
        self.instance = self._spawn(tuple(self.pending.values()))
        self.proc = self.instance.proc
        if old is not None:
            _terminate(old.proc, 2.0)
            with contextlib.suppress(FileNotFoundError):
                old.socket.unlink()
            self._dead.append(old)

    def alive(self) -> bool:
        return self.instance is not None and self.instance.proc is not None and self.instance.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """Every instance stops: the current one, any still finishing requests after a switch, and any started for
        a switch that has not answered yet (or whose switch was cancelled)."""
        with self._spawning:
            self._stopped = True
        for instance in self._spawned:
            _terminate(instance.proc, grace)
            with contextlib.suppress(FileNotFoundError):
                instance.socket.unlink()

    # --- clients ----------------------------------------------------------------------------------------------
    def transport(self) -> httpx.AsyncBaseTransport:
        return _Current(self)

    base_url = "http://llama-server"

    def _open(self, instance: Instance) -> None:
        import aiohttp

        # A connection per request (a Unix socket connects in microseconds): llama-server's HTTP library closes
        # idle keep-alive connections on its own clock, and a request sent on one it has just closed would fail.
        instance.session = aiohttp.ClientSession(
            base_url=self.base_url,
            connector=aiohttp.UnixConnector(path=str(instance.socket), limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(total=600.0, connect=5.0))
        fresh = httpx.Limits(max_keepalive_connections=0)
        instance.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(instance.socket), limits=fresh),
                                          base_url=self.base_url, timeout=httpx.Timeout(600.0, connect=5.0))

    async def _close(self, instance: Instance) -> None:
        if instance.session is not None:
            await instance.session.close()
        if instance.client is not None:
            await instance.client.aclose()

    def current(self) -> Instance:
        instance = self.instance
        if instance.session is None:
            self._open(instance)
        return instance

    async def native_tools(self) -> bool:
        """llama-server calls tools itself only when the model's chat template describes them (`/props`)."""
        instance = self.current()
        if instance.caps is None:
            try:
                props = (await instance.client.get("/props", timeout=10.0)).json()
                instance.caps = dict(props.get("chat_template_caps") or {})
            except (httpx.HTTPError, ValueError):
                return False  # not known yet: the gateway's own handling works with any template
        return bool(instance.caps.get("supports_tool_calls") and instance.caps.get("supports_tools"))

    def served_by(self, adapter: str | None, fingerprint) -> str:
        generation = self.instance.generation if self.instance else 0
        return f"llama-server-{'lora' if adapter else 'base'} (instance {generation}, {fingerprint or 'unknown build'})"

    def route(self, adapter: str | None, body: dict) -> Route:
        instance = self.current()
        instance.hold()
        return Route(instance.session, {**_named_tool(body), "model": self.model, "lora": instance.lora(adapter)},
                     instance.release)

    async def healthy(self, client: httpx.AsyncClient) -> bool:
        while self._dead:
            await self._close(self._dead.pop())
        instance = self.instance
        if instance is None or instance.proc is None or instance.proc.poll() is not None:
            return False
        return await _healthy(instance.socket)

    # --- adapters ---------------------------------------------------------------------------------------------
    async def load(self, client: httpx.AsyncClient, adapter: AdapterFiles) -> None:
        self.pending[adapter.name] = adapter

    async def unload(self, client: httpx.AsyncClient, name: str) -> None:
        self.pending.pop(name, None)

    async def commit(self, timeout: float = 300.0) -> str | None:
        """Start an instance with the pending adapter set if it differs from the running one, switch to it once it
        answers, and drain the old one. None on success, else why the new instance did not come up (the old one
        keeps serving)."""
        running = self.instance
        wanted = tuple(self.pending.values())
        if running is not None and [(a.name, a.digest) for a in running.adapters] == [(a.name, a.digest)
                                                                                     for a in wanted]:
            return None
        fresh = await asyncio.to_thread(self._spawn, wanted)
        deadline = time.monotonic() + timeout
        while not await _healthy(fresh.socket):
            if fresh.proc.poll() is not None or time.monotonic() > deadline:
                _terminate(fresh.proc, 1.0)
                with contextlib.suppress(FileNotFoundError):
                    fresh.socket.unlink()
                tail = _tail(self._log)
                return f"the instance with adapters {[a.name for a in wanted]} did not start: {tail}"
            await asyncio.sleep(0.1)
        self.instance, self.proc = fresh, fresh.proc
        log.info("llama-server generation %d serves adapters %s", fresh.generation, [a.name for a in wanted])
        if running is not None:
            task = asyncio.create_task(self._drain(running))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        return None

    async def _drain(self, instance: Instance) -> None:
        try:
            if instance.in_flight > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(instance.retired.wait(), self.drain_seconds)
        finally:
            await asyncio.to_thread(_terminate, instance.proc, 5.0)
            with contextlib.suppress(FileNotFoundError):
                instance.socket.unlink()
            await self._close(instance)


class _Current(httpx.AsyncBaseTransport):
    """httpx transport that always reaches the instance serving now (health and the odd control call)."""

    def __init__(self, backend: LlamaServerBackend) -> None:
        self.backend = backend

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with httpx.AsyncHTTPTransport(uds=str(self.backend.instance.socket)) as transport:
            response = await transport.handle_async_request(request)
            content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)


async def _healthy(socket: Path) -> bool:
    if not socket.exists():
        return False
    try:
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(socket)),
                                     base_url="http://llama-server") as client:
            return (await client.get("/health", timeout=2.0)).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(path: Path | None, size: int = 400) -> str:
    if path is None or not path.is_file():
        return "(no log)"
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode(errors="replace").strip().replace("\n", " | ")


def _named_tool(body: dict) -> dict:
    """llama-server knows tool_choice none/auto/required: a named function becomes that tool alone, required."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return body
    name = choice["function"]["name"]
    return {**body, "tools": [t for t in body["tools"] if t["function"]["name"] == name], "tool_choice": "required"}
