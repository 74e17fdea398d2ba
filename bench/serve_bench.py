"""Gateway overhead and adapter speed, in one run on the same prompts.

1. The same requests sent straight to the llama.cpp backend (its Unix socket) and through the gateway
   (bearer token, limits, model check, audit event), alternating request by request so both sides see the same
   machine; the gateway's overhead is the difference of each pair's latency (p50), and its throughput loss the
   difference of completion tokens per second over all requests.
2. Completion tokens per second of the base model against the approved adapter (dynamic LoRA on the shared
   base), both straight to the backend.

    .venv/bin/python bench/serve_bench.py [--home var/demo] [--requests 40] [--max-tokens 32]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import approved_adapter, gateway, tokens  # noqa: E402
from _serving import parser as cli_parser  # noqa: E402

PROMPTS = [
    "My laptop will not turn on after the update.", "The VPN drops every ten minutes since Monday.",
    "I cannot print to the second floor printer.", "Outlook asks for my password again and again.",
    "The shared drive is read-only for our whole team.", "My monitor flickers when I connect the dock.",
    "I need access to the finance reporting folder.", "The Wi-Fi in meeting room 4 is very slow.",
]


def _ask(client: httpx.Client, path: str, model: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0}
    start = time.perf_counter()
    response = client.post(path, json=body)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json()["usage"]["completion_tokens"]


def main() -> None:
    parser = cli_parser(__doc__)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    adapter = approved_adapter(args.home)
    [token] = tokens(args.home, args.user, 1)
    with gateway(args.home) as (url, sock):
        direct = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://backend", timeout=300)
        through = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300)
        for client in (direct, through):  # warm both paths
            _ask(client, "/v1/chat/completions", adapter, PROMPTS[0], 4)
        pairs, tokens_done = [], {"direct": 0, "gateway": 0}
        seconds = {"direct": 0.0, "gateway": 0.0}
        for i in range(args.requests):
            prompt, model = PROMPTS[i % len(PROMPTS)], adapter if i % 2 else "smollm2"
            order = [("direct", direct), ("gateway", through)]
            if i % 4 >= 2:
                order.reverse()
            pair = {}
            for side, client in order:
                elapsed, produced = _ask(client, "/v1/chat/completions", model, prompt, args.max_tokens)
                pair[side] = elapsed
                seconds[side] += elapsed
                tokens_done[side] += produced
            pairs.append(pair["gateway"] - pair["direct"])
        speed = {}
        for model in ("smollm2", adapter):
            total_s = total_t = 0
            for prompt in PROMPTS:
                elapsed, produced = _ask(direct, "/v1/chat/completions", model, prompt, 64)
                total_s, total_t = total_s + elapsed, total_t + produced
            speed[model] = total_t / total_s
    throughput = {k: tokens_done[k] / seconds[k] for k in seconds}
    result = {
        "requests_per_side": args.requests, "max_tokens": args.max_tokens,
        "gateway_overhead_ms_p50": round(statistics.median(pairs) * 1000, 2),
        "gateway_overhead_ms_p90": round(statistics.quantiles(pairs, n=10)[-1] * 1000, 2),
        "throughput_tokens_per_s": {k: round(v, 1) for k, v in throughput.items()},
        "throughput_loss": round(1 - throughput["gateway"] / throughput["direct"], 4),
        "base_tokens_per_s": round(speed["smollm2"], 1), "adapter_tokens_per_s": round(speed[adapter], 1),
        "adapter_vs_base": round(speed[adapter] / speed["smollm2"], 3),
    }
    print(f"gateway overhead p50 {result['gateway_overhead_ms_p50']} ms (target <= 5 ms); throughput loss "
          f"{result['throughput_loss'] * 100:.2f}% (target <= 5%)")
    print(f"adapter {result['adapter_tokens_per_s']} tokens/s vs base {result['base_tokens_per_s']} tokens/s: "
          f"{result['adapter_vs_base']:.3f}x (target >= 0.9)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
