"""Many users at once, old and new CPU backends in one run on the same prompts.

For each backend (llama-server, then the llama-cpp-python binding it replaced), the gateway is started and
1, 4, 8 and 16 concurrent streaming clients (each with its own API token) send chat requests, base and adapter
mixed: aggregate completion tokens per second and p50/p95 time to the first token. With llama-server also, at
16 clients: base-only traffic (what mixing adapters costs), the same engine driven straight on its socket with
the same requests (what the gateway costs), and the load itself: `--requests` requests, every answer whole.
A 429 is deliberate (the client waits the Retry-After and asks again) and counted apart; anything else is an
error. Exit status 1 on any error.

    .venv/bin/python bench/serve_load.py [--home var/demo] [--requests 300] [--max-tokens 32] [--skip-binding]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import Direct, approved_adapter, gateway, tokens  # noqa: E402
from _serving import parser as cli_parser  # noqa: E402

PROMPTS = ["the printer on floor 2 is offline", "my laptop will not boot after the update",
           "the VPN drops every ten minutes", "Outlook keeps asking for my password",
           "I need access to the finance share", "the projector in room 4 shows no signal"]


def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Ticket {i}: {PROMPTS[i % len(PROMPTS)]}. What should I do?"}]


async def _gateway_request(client: openai.AsyncOpenAI, model: str, i: int, max_tokens: int, stats: dict) -> None:
    while True:
        start = time.perf_counter()
        try:
            stream = await client.chat.completions.create(
                model=model, messages=_messages(i), max_tokens=max_tokens, temperature=0, stream=True,
                stream_options={"include_usage": True})
            first, pieces, usage = None, [], None
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter() - start
                    pieces.append(chunk.choices[0].delta.content)
                if chunk.usage:
                    usage = chunk.usage
            if usage is None or not pieces:
                raise RuntimeError("stream ended without text or usage")
            stats["first_token"].append(first)
            stats["tokens"] += usage.completion_tokens
            stats["ok"] += 1
            return
        except openai.RateLimitError as exc:
            stats["429"] += 1
            await asyncio.sleep(float(exc.response.headers.get("retry-after", "1")))
        except Exception as exc:  # noqa: BLE001 - every other failure is counted and named
            stats["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
            return


async def _direct_request(client: httpx.AsyncClient, direct: Direct, model: str, i: int, max_tokens: int,
                          stats: dict) -> None:
    body = direct.body(model, {"messages": _messages(i), "max_tokens": max_tokens, "temperature": 0,
                               "stream": True, "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    first, usage = None, None
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and (chunk["choices"][0].get("delta") or {}).get("content"):
                    first = first or time.perf_counter() - start
                usage = chunk.get("usage") or usage
        stats["first_token"].append(first)
        stats["tokens"] += usage["completion_tokens"]
        stats["ok"] += 1
    except Exception as exc:  # noqa: BLE001
        stats["errors"].append(f"{type(exc).__name__}: {exc}"[:200])


async def _round(send, clients: int, requests: int, models) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    stats = {"ok": 0, "429": 0, "errors": [], "first_token": [], "tokens": 0}

    async def worker(w: int) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await send(w, models(i), i, stats)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    seconds = time.perf_counter() - start
    ttft = sorted(t for t in stats["first_token"] if t is not None)
    return {"clients": clients, "requests": requests, "ok": stats["ok"], "deliberate_429": stats["429"],
            "errors": len(stats["errors"]), "error_samples": stats["errors"][:3], "seconds": round(seconds, 2),
            "tokens_per_s": round(stats["tokens"] / seconds, 1),
            "ttft_s_p50": round(statistics.median(ttft), 3) if ttft else None,
            "ttft_s_p95": round(ttft[int(0.95 * (len(ttft) - 1))], 3) if ttft else None}


def _measure(url: str, keys: list[str], adapter: str, max_tokens: int, ladder: list[tuple[int, int]],
             direct: Direct | None, load: int) -> dict:
    async def run() -> dict:
        sdks = [openai.AsyncOpenAI(base_url=url + "/v1", api_key=k, max_retries=0, timeout=600) for k in keys]

        def through(w, model, i, stats):
            return _gateway_request(sdks[w], model, i, max_tokens, stats)

        mixed = lambda i: adapter if i % 2 else "smollm2"  # noqa: E731
        out = {"mixed": []}
        await _round(through, 2, 4, mixed)  # warm-up: both paths loaded, caches filled
        for clients, requests in ladder:
            out["mixed"].append(await _round(through, clients, requests, mixed))
            print(f"  {clients:>2} clients: {out['mixed'][-1]['tokens_per_s']} tokens/s, "
                  f"first token p50 {out['mixed'][-1]['ttft_s_p50']} s", flush=True)
        if direct is not None:
            top, requests = ladder[-1]
            out["base_only"] = await _round(through, top, requests, lambda i: "smollm2")
            async with direct.async_client() as raw:
                def straight(w, model, i, stats):
                    return _direct_request(raw, direct, model, i, max_tokens, stats)

                out["direct"] = await _round(straight, top, requests, mixed)
            out["gateway_again"] = await _round(through, top, requests, mixed)  # the engine warm both ways
            if load:
                out["load"] = await _round(through, top, load, mixed)
        for sdk in sdks:
            await sdk.close()
        return out

    return asyncio.run(run())


def main() -> None:
    parser = cli_parser(__doc__)
    parser.add_argument("--requests", type=int, default=300, help="the load: requests at 16 clients")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--skip-binding", action="store_true", help="measure llama-server only")
    args = parser.parse_args()
    adapter = approved_adapter(args.home)
    keys = tokens(args.home, args.user, 16)
    result = {"max_tokens": args.max_tokens}
    print("llama-server:", flush=True)
    with gateway(args.home, backend="llamacpp") as (url, direct):
        result["llama_server"] = _measure(url, keys, adapter, args.max_tokens,
                                          [(1, 8), (4, 16), (8, 32), (16, 64)], direct, args.requests)
    if not args.skip_binding:
        print("llama-cpp-python binding:", flush=True)
        with gateway(args.home, backend="llamacpp-binding") as (url, _):
            result["binding"] = _measure(url, keys, adapter, args.max_tokens,
                                         [(1, 8), (4, 16), (8, 24), (16, 32)], None, 0)
    new = result["llama_server"]
    by = {r["clients"]: r for r in new["mixed"]}
    through = statistics.mean([by[16]["tokens_per_s"], new["gateway_again"]["tokens_per_s"]])
    result["ratios"] = {
        "scaling_16_vs_1": round(by[16]["tokens_per_s"] / by[1]["tokens_per_s"], 2),
        "gateway_vs_direct_16": round(through / new["direct"]["tokens_per_s"], 3),
        "mixed_vs_base_only_16": round(by[16]["tokens_per_s"] / new["base_only"]["tokens_per_s"], 3),
        "ttft_p50_16_s": by[16]["ttft_s_p50"],
        "load_errors": new["load"]["errors"] if "load" in new else None,
    }
    if "binding" in result:
        old = {r["clients"]: r for r in result["binding"]["mixed"]}
        result["ratios"]["new_vs_old_16"] = round(by[16]["tokens_per_s"] / old[16]["tokens_per_s"], 2)
        result["ratios"]["old_scaling_16_vs_1"] = round(old[16]["tokens_per_s"] / old[1]["tokens_per_s"], 2)
    r = result["ratios"]
    print(f"16 clients vs 1: {r['scaling_16_vs_1']}x (target >= 2.5); gateway vs the engine straight: "
          f"{r['gateway_vs_direct_16']}x (target >= 0.95); mixed vs base-only: {r['mixed_vs_base_only_16']}x "
          f"(target >= 0.8); first token p50 at 16: {r['ttft_p50_16_s']} s (target <= 2)")
    if "load" in new:
        print(f"load: {new['load']['ok']}/{args.requests} answered, {new['load']['errors']} errors, "
              f"{new['load']['deliberate_429']} deliberate 429s")
    if "new_vs_old_16" in r:
        print(f"llama-server vs the binding at 16 clients: {r['new_vs_old_16']}x "
              f"(the binding scales {r['old_scaling_16_vs_1']}x from 1 to 16)")
    print(json.dumps(result))
    failed = (new.get("load", {}).get("errors", 0) or new.get("load", {}).get("ok", args.requests) != args.requests)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
