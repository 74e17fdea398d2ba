"""Gateway overhead and adapter speed, in one run on the same prompts.

1. The same requests sent straight to the CPU engine (its Unix socket) and through the gateway
   (bearer token, limits, model check, audit event), alternating request by request so both sides see the same
   machine. The gateway's overhead is the difference of each pair's latency (p50) on one-token requests, where
   the backend's own jitter is smallest; its throughput loss is the difference of completion tokens per second
   over requests of `--max-tokens` tokens.
2. Completion tokens per second of the base model against the approved adapter, both straight to the engine,
   one request at a time: as a LoRA on the shared base; with `--backend llamacpp-binding` also from the merged
   copy the binding builds once the adapter is hot (a second gateway, merging after one request). Base and
   adapter alternate prompt by prompt.

    .venv/bin/python bench/serve_bench.py [--home var/demo] [--backend llamacpp|llamacpp-binding] [--requests 40]
        [--max-tokens 32] [--latency-requests 100]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import ROOT, Direct, approved_adapter, gateway, tokens  # noqa: E402
from _serving import parser as cli_parser  # noqa: E402

PROMPTS = [
    "My laptop will not turn on after the update.", "The VPN drops every ten minutes since Monday.",
    "I cannot print to the second floor printer.", "Outlook asks for my password again and again.",
    "The shared drive is read-only for our whole team.", "My monitor flickers when I connect the dock.",
    "I need access to the finance reporting folder.", "The Wi-Fi in meeting room 4 is very slow.",
]


def _ask(client: httpx.Client, path: str, model: str, prompt: str, max_tokens: int,
         direct: Direct | None = None) -> tuple[float, int]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0}
    if direct is not None:
        body = direct.body(model, body)
    start = time.perf_counter()
    response = client.post(path, json=body)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json()["usage"]["completion_tokens"]


def _speed(direct: httpx.Client, engine: Direct, models: tuple[str, str]) -> dict[str, float]:
    """Completion tokens per second of each model, 64 tokens per prompt, the two alternating prompt by prompt."""
    done = {m: [0.0, 0] for m in models}
    for prompt in PROMPTS:
        for model in models:
            elapsed, produced = _ask(direct, "/v1/chat/completions", model, prompt, 64, engine)
            done[model][0] += elapsed
            done[model][1] += produced
    return {m: t / s for m, (s, t) in done.items()}


def _policy(folder: Path, merge_after: int) -> Path:
    """A policy folder: the shipped policies with the serving policy's merge threshold set."""
    installed = folder / f"policies-merge-{merge_after}"
    shutil.copytree(ROOT / "policies", installed)
    text = (ROOT / "policies" / "serving.yaml").read_text()
    if "merge_after_requests: 8" not in text:
        sys.exit("bench: policies/serving.yaml no longer sets merge_after_requests: 8; update this benchmark")
    (installed / "serving.yaml").write_text(text.replace("merge_after_requests: 8",
                                                         f"merge_after_requests: {merge_after}"))
    return installed


def main() -> None:
    parser = cli_parser(__doc__)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=100)
    parser.add_argument("--backend", choices=["llamacpp", "llamacpp-binding"], default="llamacpp")
    args = parser.parse_args()
    adapter = approved_adapter(args.home)
    [token] = tokens(args.home, args.user, 1)
    folder = Path(tempfile.mkdtemp())
    with gateway(args.home, _policy(folder, 0), args.backend) as (url, engine):
        direct = engine.client(300)
        through = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300)
        sides = {"direct": engine, "gateway": None}
        for client, side in ((direct, engine), (through, None)):  # warm both paths
            _ask(client, "/v1/chat/completions", adapter, PROMPTS[0], 4, side)
        pairs, tokens_done = [], {"direct": 0, "gateway": 0}
        for i in range(args.latency_requests):
            prompt, model = PROMPTS[i % len(PROMPTS)], adapter if i % 2 else "smollm2"
            order = [("direct", direct), ("gateway", through)] if i % 4 < 2 else [("gateway", through),
                                                                                 ("direct", direct)]
            pair = {side: _ask(client, "/v1/chat/completions", model, prompt, 1, sides[side])[0]
                    for side, client in order}
            pairs.append(pair["gateway"] - pair["direct"])
        seconds = {"direct": 0.0, "gateway": 0.0}
        for i in range(args.requests):
            prompt, model = PROMPTS[i % len(PROMPTS)], adapter if i % 2 else "smollm2"
            order = [("direct", direct), ("gateway", through)]
            if i % 4 >= 2:
                order.reverse()
            for side, client in order:
                elapsed, produced = _ask(client, "/v1/chat/completions", model, prompt, args.max_tokens,
                                         sides[side])
                seconds[side] += elapsed
                tokens_done[side] += produced
        lora = _speed(direct, engine, ("smollm2", adapter))
    merged = None
    if args.backend == "llamacpp-binding":
        with gateway(args.home, _policy(folder, 1), args.backend) as (url, engine):
            direct = engine.client(300)
            _ask(direct, "/v1/chat/completions", adapter, PROMPTS[0], 4, engine)  # makes the adapter hot
            deadline = time.monotonic() + 300
            while direct.get("/health").json().get("merged") != adapter:
                if time.monotonic() > deadline:
                    raise SystemExit("the backend did not merge the hot adapter; see logs/backend.log")
                time.sleep(0.5)
            merged = _speed(direct, engine, ("smollm2", adapter))
    throughput = {k: tokens_done[k] / seconds[k] for k in seconds}
    result = {
        "requests_per_side": args.requests, "max_tokens": args.max_tokens, "latency_pairs": len(pairs),
        "gateway_overhead_ms_p50": round(statistics.median(pairs) * 1000, 2),
        "gateway_overhead_ms_p90": round(statistics.quantiles(pairs, n=10)[-1] * 1000, 2),
        "throughput_tokens_per_s": {k: round(v, 1) for k, v in throughput.items()},
        "throughput_loss": round(1 - throughput["gateway"] / throughput["direct"], 4),
        "lora": {"base_tokens_per_s": round(lora["smollm2"], 1), "adapter_tokens_per_s": round(lora[adapter], 1),
                 "adapter_vs_base": round(lora[adapter] / lora["smollm2"], 3)},
        "backend": args.backend,
    }
    if merged:
        result["merged"] = {"base_tokens_per_s": round(merged["smollm2"], 1),
                            "adapter_tokens_per_s": round(merged[adapter], 1),
                            "adapter_vs_base": round(merged[adapter] / merged["smollm2"], 3)}
    print(f"gateway overhead p50 {result['gateway_overhead_ms_p50']} ms (target <= 5 ms); throughput loss "
          f"{result['throughput_loss'] * 100:.2f}% (target <= 5%)")
    for path, label in (("lora", "as a dynamic LoRA"), ("merged", "hot, from its merged copy")):
        if path not in result:
            continue
        r = result[path]
        print(f"adapter {label}: {r['adapter_tokens_per_s']} tokens/s vs base {r['base_tokens_per_s']} tokens/s: "
              f"{r['adapter_vs_base']:.3f}x (target >= 0.9)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
