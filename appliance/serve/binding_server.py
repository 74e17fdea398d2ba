"""llama-cpp-python's binding as a server process (`serve --backend llamacpp-binding`, kept beside llama-server
for comparison): one process, one base GGUF in memory, any number of GGUF LoRA adapters attached to
that same model (llama.cpp shares the base weights; each adapter costs only its own tensors) and switched per
request. It speaks the OpenAI protocol on a Unix socket that only the appliance's account can open; the
gateway is its only client. Adapters are loaded and unloaded at run time by the gateway
(`PUT /adapters/NAME`, `DELETE /adapters/NAME`) after it has verified them.

Run as `python -m appliance.serve.binding_server --socket PATH --model NAME --gguf FILE [--threads N] [--ctx N]
[--merge-dir DIR --merge-after N [--hot-window S]]`."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import Request

from appliance.serve import openai_routes

# Sampling and stopping parameters passed through to llama-cpp-python; anything else in a request is ignored.
_COMMON = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


class ModelHost:
    """The base model and its adapters; one request at a time (llama.cpp's context is not shared).

    A hot adapter (all adapter requests of the last `hot_window` seconds, at least `merge_after` of them) is
    merged into a copy of the base (appliance/serve/merge.py) in the background and then served from that copy:
    no extra matmuls per token, at the cost of a second model in memory. Its tensors are written as Q8_0, fine
    enough to keep the adapter's small deltas that a 4-bit requantisation would round away. Only one merged
    copy exists at a time; it is replaced when another adapter becomes the only hot one, and dropped when its
    adapter is unloaded. `merge_after=0` turns merging off."""

    def __init__(self, model: str, gguf: Path, threads: int, n_ctx: int, *, merge_dir: Path | None = None,
                 merge_after: int = 0, hot_window: float = 120.0) -> None:
        import llama_cpp

        self._cpp = llama_cpp
        self.model, self.gguf, self.threads, self.n_ctx = model, gguf, threads, n_ctx
        self.llm = self._open(gguf)
        self.adapters: dict[str, tuple[object, str, Path]] = {}  # name -> (llama_adapter_lora_p, digest, file)
        self.lock = threading.Lock()
        self._active: str | None = None
        self.merge_dir, self.merge_after, self.hot_window = merge_dir, merge_after, hot_window
        self.merged: tuple[str, str, object, Path] | None = None  # (adapter, its digest, Llama, file)
        self._merging: str | None = None
        self._recent: list[tuple[float, str]] = []  # (monotonic time, adapter) of adapter requests
        if merge_dir is not None and merge_dir.is_dir():  # a previous backend's copies: derived, never reused
            for stale in merge_dir.iterdir():
                stale.unlink()

    def _open(self, path: Path):
        from llama_cpp import Llama

        return Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.threads,
                     n_threads_batch=self.threads, seed=0, verbose=False)

    def load(self, name: str, path: Path, digest: str) -> None:
        with self.lock:
            if name in self.adapters:
                self._free(name)
            handle = self._cpp.llama_adapter_lora_init(self.llm._model.model, str(path).encode())
            if not handle:
                raise ValueError(f"llama.cpp could not load the LoRA adapter {path}")
            self.adapters[name] = (handle, digest, path)

    def unload(self, name: str) -> bool:
        with self.lock:
            if name not in self.adapters:
                return False
            self._free(name)
            return True

    def _free(self, name: str) -> None:
        handle, _, _ = self.adapters.pop(name)
        if self._active == name:
            self._select(None)
        self._cpp.llama_adapter_lora_free(handle)
        if self.merged and self.merged[0] == name:
            self._drop_merged()

    def _drop_merged(self) -> None:
        _, _, llm, path = self.merged
        self.merged = None
        llm.close()
        path.unlink(missing_ok=True)

    def _note(self, name: str) -> None:
        """Count an adapter request; start merging `name` when it alone is hot (called under the lock)."""
        if not self.merge_after or self.merge_dir is None:
            return
        now = time.monotonic()
        self._recent = [(t, n) for t, n in self._recent if now - t <= self.hot_window] + [(now, name)]
        if (self._merging or (self.merged and self.merged[0] == name) or len(self._recent) < self.merge_after
                or any(n != name for _, n in self._recent)):
            return
        self._merging = name
        threading.Thread(target=self._merge, args=(name,), daemon=True, name=f"merge-{name}").start()

    def _merge(self, name: str) -> None:
        from appliance.serve.merge import merge_lora

        try:
            with self.lock:
                if name not in self.adapters:
                    return
                _, digest, source = self.adapters[name]
            self.merge_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = self.merge_dir / f"{digest}.gguf"
            merge_lora(self.gguf, source, target, quantization="Q8_0")
            llm = self._open(target)
            with self.lock:
                if name not in self.adapters or self.adapters[name][1] != digest:  # unloaded meanwhile
                    llm.close()
                    target.unlink(missing_ok=True)
                    return
                if self.merged:
                    self._drop_merged()
                self.merged = (name, digest, llm, target)
            print(f"adapter {name} merged into a copy of the base; served from it", flush=True)
        except Exception as exc:  # the dynamic path keeps serving; the log says why merging failed
            print(f"adapter {name}: merging failed, serving it as a LoRA: {exc}", flush=True)
        finally:
            self._merging = None

    def _select(self, name: str | None) -> None:
        """Attach one adapter (or none) to the context (`run` drops the prompt cache before every request)."""
        if name == self._active:
            return
        ctx = self.llm._ctx.ctx
        if name is None:
            self._cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            handles = (self._cpp.llama_adapter_lora_p_ctypes * 1)(self.adapters[name][0])
            scales = (ctypes.c_float * 1)(1.0)
            if self._cpp.llama_set_adapters_lora(ctx, handles, 1, scales):
                raise RuntimeError(f"llama.cpp refused to attach adapter {name}")
        self._active = name

    def run(self, kind: str, body: dict) -> Iterator[dict] | dict:
        """A completion for `body` (chat or text, streaming or not). Holds the lock until it is finished."""
        name = body.get("model")
        if name != self.model and name not in self.adapters:
            raise KeyError(name)
        args = {k: body[k] for k in _COMMON if body.get(k) is not None}
        stream = bool(body.get("stream"))
        self.lock.acquire()
        try:
            if name == self.model:
                llm, path = self.llm, "base"
                self._select(None)
            elif self.merged and self.merged[0] == name:
                llm, path = self.merged[2], "merged"
                self._note(name)
            else:
                llm, path = self.llm, "lora"
                self._select(name)
                self._note(name)
            # No prompt cache across requests: a cached prefix is evaluated in other batch shapes, which moves
            # quantised logits enough to change greedy answers; the same request must get the same answer.
            llm.reset()
            if kind == "chat":
                out = llm.create_chat_completion(messages=body["messages"], stream=stream, **args)
            else:
                out = llm.create_completion(prompt=body["prompt"], stream=stream, **args)
        except BaseException:
            self.lock.release()
            raise
        fingerprint = f"llamacpp-{path}"
        if not stream:
            self.lock.release()
            out["model"], out["system_fingerprint"] = name, fingerprint
            return out
        return self._stream(llm, out, name, fingerprint,
                            bool((body.get("stream_options") or {}).get("include_usage")))

    def _stream(self, llm, chunks: Iterator[dict], name: str, fingerprint: str,
                include_usage: bool) -> Iterator[dict]:
        try:
            produced, prompt_tokens, last = 0, 0, None
            for chunk in chunks:
                if produced == 0:
                    prompt_tokens = llm.n_tokens  # the prompt is evaluated once the first token exists
                chunk["model"], chunk["system_fingerprint"] = name, fingerprint
                choice = chunk["choices"][0]
                if choice.get("text") or (choice.get("delta") or {}).get("content"):
                    produced += 1
                last = chunk
                yield chunk
            if include_usage and last is not None:
                yield {"id": last["id"], "object": last["object"], "created": last["created"], "model": name,
                       "system_fingerprint": fingerprint, "choices": [],
                       "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": produced,
                                 "total_tokens": prompt_tokens + produced}}
        finally:
            self.lock.release()


def create_app(host: ModelHost):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": host.model, "pid": os.getpid(),
                "adapters": {n: d for n, (_, d, _) in host.adapters.items()},
                "merged": host.merged[0] if host.merged else None}

    @app.get("/v1/models")
    def models() -> dict:
        now = int(time.time())
        names = [host.model, *host.adapters]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": now, "owned_by": "appliance"}
                                           for n in names]}

    @app.put("/adapters/{name}")
    async def load(name: str, request: Request):
        spec = await request.json()
        from starlette.concurrency import run_in_threadpool

        try:
            await run_in_threadpool(host.load, name, Path(spec["path"]), spec["digest"])
        except (ValueError, KeyError) as exc:
            return error(400, str(exc))
        return {"loaded": name}

    @app.delete("/adapters/{name}")
    async def unload(name: str):
        from starlette.concurrency import run_in_threadpool

        if not await run_in_threadpool(host.unload, name):
            return error(404, f"adapter {name} is not loaded", "not_found_error")
        return {"unloaded": name}

    async def complete(kind: str, request: Request):
        from starlette.concurrency import run_in_threadpool

        body = await request.json()
        try:
            out = await run_in_threadpool(host.run, kind, body)
        except KeyError:
            return error(404, f"model {body.get('model')!r} is not loaded", "not_found_error")
        except ValueError as exc:  # e.g. the prompt does not fit the context
            return error(400, str(exc))
        if isinstance(out, dict):
            return JSONResponse(out)

        def sse() -> Iterator[bytes]:
            for chunk in out:
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    openai_routes.completion_routes(app, complete)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m appliance.serve.binding_server")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--gguf", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--merge-dir", type=Path, help="where a hot adapter's merged copy of the base is written")
    parser.add_argument("--merge-after", type=int, default=0,
                        help="merge an adapter after this many requests with no other adapter asked for (0: never)")
    parser.add_argument("--hot-window", type=float, default=120.0, help="seconds of requests that count as hot")
    args = parser.parse_args(argv)
    from appliance import offline

    offline.enforce()
    import uvicorn

    host = ModelHost(args.model, args.gguf, args.threads, args.ctx, merge_dir=args.merge_dir,
                      merge_after=args.merge_after, hot_window=args.hot_window)
    args.socket.unlink(missing_ok=True)
    os.umask(0o077)  # the socket: the appliance's account only
    config = uvicorn.Config(create_app(host), uds=str(args.socket), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
