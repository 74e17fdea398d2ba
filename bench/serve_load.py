"""Load: 16 concurrent streaming clients send 300 chat requests through the gateway (base and adapter mixed),
each client with its own API token; every answer must arrive whole. A 429 is deliberate (the client waits the
Retry-After and asks again) and counted apart; anything else is an error. Exit status 1 on any error.

    .venv/bin/python bench/serve_load.py [--home var/demo] [--clients 16] [--requests 300]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import approved_adapter, gateway, tokens  # noqa: E402
from _serving import parser as cli_parser  # noqa: E402


async def _client(url: str, token: str, adapter: str, queue: asyncio.Queue, stats: dict) -> None:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=token, max_retries=0, timeout=600)
    while True:
        try:
            i = queue.get_nowait()
        except asyncio.QueueEmpty:
            await client.close()
            return
        model = adapter if i % 2 else "smollm2"
        while True:
            start = time.perf_counter()
            try:
                stream = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"Ticket {i}: the printer is offline."}],
                    max_tokens=16, stream=True, stream_options={"include_usage": True})
                first, pieces, usage = None, [], None
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        first = first or time.perf_counter() - start
                        pieces.append(chunk.choices[0].delta.content)
                    if chunk.usage:
                        usage = chunk.usage
                if usage is None or not pieces:
                    raise RuntimeError("stream ended without text or usage")
                stats["latency"].append(time.perf_counter() - start)
                stats["first_token"].append(first)
                stats["ok"] += 1
                break
            except openai.RateLimitError as exc:
                stats["429"] += 1
                await asyncio.sleep(float(exc.response.headers.get("retry-after", "1")))
            except Exception as exc:  # noqa: BLE001 - every other failure is counted and named
                stats["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
                break


async def _run(url: str, clients: list[str], adapter: str, requests: int) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    stats = {"ok": 0, "429": 0, "errors": [], "latency": [], "first_token": []}
    start = time.perf_counter()
    await asyncio.gather(*(_client(url, token, adapter, queue, stats) for token in clients))
    stats["seconds"] = time.perf_counter() - start
    return stats


def main() -> None:
    parser = cli_parser(__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    adapter = approved_adapter(args.home)
    keys = tokens(args.home, args.user, args.clients)
    with gateway(args.home) as (url, _):
        stats = asyncio.run(_run(url, keys, adapter, args.requests))
    lat = sorted(stats["latency"])
    result = {"clients": args.clients, "requests": args.requests, "ok": stats["ok"], "deliberate_429": stats["429"],
              "errors": len(stats["errors"]), "seconds": round(stats["seconds"], 1),
              "requests_per_s": round(stats["ok"] / stats["seconds"], 2),
              "latency_s_p50": round(statistics.median(lat), 3) if lat else None,
              "latency_s_p95": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
              "first_token_s_p50": round(statistics.median(stats["first_token"]), 3) if lat else None}
    print(f"{result['ok']}/{args.requests} answered by {args.clients} streaming clients in {result['seconds']} s; "
          f"{result['deliberate_429']} deliberate 429s; {result['errors']} errors")
    for error in stats["errors"][:10]:
        print("  error:", error)
    print(json.dumps(result))
    sys.exit(1 if stats["errors"] or stats["ok"] != args.requests else 0)


if __name__ == "__main__":
    main()
