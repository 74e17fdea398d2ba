"""The llama.cpp backend: one process, one base GGUF in memory, any number of GGUF LoRA adapters attached to
that same model (llama.cpp shares the base weights; each adapter costs only its own tensors) and switched per
request. It speaks the OpenAI protocol on a Unix socket that only the appliance's account can open; the
gateway is its only client. Adapters are loaded and unloaded at run time by the gateway
(`PUT /adapters/NAME`, `DELETE /adapters/NAME`) after it has verified them.

Run as `python -m appliance.serve.backend --socket PATH --model NAME --gguf FILE [--threads N] [--ctx N]`."""

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

# Sampling and stopping parameters passed through to llama-cpp-python; anything else in a request is ignored.
_COMMON = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


class Engine:
    """The base model and its adapters; one request at a time (llama.cpp's context is not shared)."""

    def __init__(self, model: str, gguf: Path, threads: int, n_ctx: int) -> None:
        import llama_cpp
        from llama_cpp import Llama

        self._cpp = llama_cpp
        self.model = model
        self.llm = Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, seed=0,
                         verbose=False)
        self.adapters: dict[str, tuple[object, str]] = {}  # name -> (llama_adapter_lora_p, digest)
        self.lock = threading.Lock()
        self._active: str | None = None

    def load(self, name: str, path: Path, digest: str) -> None:
        with self.lock:
            if name in self.adapters:
                self._free(name)
            handle = self._cpp.llama_adapter_lora_init(self.llm._model.model, str(path).encode())
            if not handle:
                raise ValueError(f"llama.cpp could not load the LoRA adapter {path}")
            self.adapters[name] = (handle, digest)

    def unload(self, name: str) -> bool:
        with self.lock:
            if name not in self.adapters:
                return False
            self._free(name)
            return True

    def _free(self, name: str) -> None:
        handle, _ = self.adapters.pop(name)
        if self._active == name:
            self._select(None)
        self._cpp.llama_adapter_lora_free(handle)

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
            self._select(None if name == self.model else name)
            # No prompt cache across requests: a cached prefix is evaluated in other batch shapes, which moves
            # quantised logits enough to change greedy answers; the same request must get the same answer.
            self.llm.reset()
            if kind == "chat":
                out = self.llm.create_chat_completion(messages=body["messages"], stream=stream, **args)
            else:
                out = self.llm.create_completion(prompt=body["prompt"], stream=stream, **args)
        except BaseException:
            self.lock.release()
            raise
        if not stream:
            self.lock.release()
            out["model"] = name
            return out
        return self._stream(out, name, bool((body.get("stream_options") or {}).get("include_usage")))

    def _stream(self, chunks: Iterator[dict], name: str, include_usage: bool) -> Iterator[dict]:
        try:
            produced, prompt_tokens, last = 0, 0, None
            for chunk in chunks:
                if produced == 0:
                    prompt_tokens = self.llm.n_tokens  # the prompt is evaluated once the first token exists
                chunk["model"] = name
                choice = chunk["choices"][0]
                if choice.get("text") or (choice.get("delta") or {}).get("content"):
                    produced += 1
                last = chunk
                yield chunk
            if include_usage and last is not None:
                yield {"id": last["id"], "object": last["object"], "created": last["created"], "model": name,
                       "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": produced,
                                                "total_tokens": prompt_tokens + produced}}
        finally:
            self.lock.release()


def create_app(engine: Engine):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": engine.model, "pid": os.getpid(),
                "adapters": {n: d for n, (_, d) in engine.adapters.items()}}

    @app.get("/v1/models")
    def models() -> dict:
        now = int(time.time())
        names = [engine.model, *engine.adapters]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": now, "owned_by": "appliance"}
                                           for n in names]}

    @app.put("/adapters/{name}")
    async def load(name: str, request: Request):
        spec = await request.json()
        from starlette.concurrency import run_in_threadpool

        try:
            await run_in_threadpool(engine.load, name, Path(spec["path"]), spec["digest"])
        except (ValueError, KeyError) as exc:
            return error(400, str(exc))
        return {"loaded": name}

    @app.delete("/adapters/{name}")
    async def unload(name: str):
        from starlette.concurrency import run_in_threadpool

        if not await run_in_threadpool(engine.unload, name):
            return error(404, f"adapter {name} is not loaded", "not_found_error")
        return {"unloaded": name}

    async def complete(kind: str, request: Request):
        from starlette.concurrency import run_in_threadpool

        body = await request.json()
        try:
            out = await run_in_threadpool(engine.run, kind, body)
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

    completion_routes(app, complete)
    return app


def completion_routes(app, complete) -> None:
    """OpenAI's two completion endpoints onto `complete(route, request)`, route "chat" or "text"."""

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await complete("chat", request)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete("text", request)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m appliance.serve.backend")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--gguf", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ctx", type=int, default=2048)
    args = parser.parse_args(argv)
    from appliance import offline

    offline.enforce()
    import uvicorn

    engine = Engine(args.model, args.gguf, args.threads, args.ctx)
    args.socket.unlink(missing_ok=True)
    os.umask(0o077)  # the socket: the appliance's account only
    config = uvicorn.Config(create_app(engine), uds=str(args.socket), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
