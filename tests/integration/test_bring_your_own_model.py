"""A model the organisation brings, end to end on architectures other than the embedded Llama: a transformers
folder imported (llama.cpp's GGUF made for it), chatted with, trained under the training policy, its adapter
exported to a GGUF LoRA checked against the base GGUF, and served by llama-server with that adapter: llama-server's
tokens with and without the adapter are the ones the binding ranks first, at the same logprobs, on the same GGUF
files (whose parity with transformers and PEFT `test_architectures` checks)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, installed_policies
from tests.tiny_models import build

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "policies" / "recipes" / "smollm2-135m-lora-sft.yaml"
PROMPT = "<|im_start|>user\nMy laptop will not start.<|im_end|>\n<|im_start|>assistant\n"


def _binding_logprobs(gguf: Path, tokens: list[int], lora: Path | None, prompt: int | None = None):
    """log-softmax of the binding's logits at every position of `tokens`: the first `prompt` tokens in one batch
    and each after them alone, as llama-server decodes (a batch and a single token sum in different orders)."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=256, n_threads=2, verbose=False, logits_all=True,
                lora_path=str(lora) if lora else None)
    try:
        prompt = len(tokens) if prompt is None else prompt
        llm.eval(tokens[:prompt])
        for token in tokens[prompt:]:
            llm.eval([token])
        logits = np.array(llm.scores[: len(tokens)], dtype=np.float64)
    finally:
        llm.close()
    return logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - \
        logits.max(-1, keepdims=True)


def _served(url: str, tokens: list[int], n: int, scale: float) -> tuple[list[int], list[float]]:
    """llama-server's greedy tokens for `tokens` with the adapter at `scale`, and the logprob of each (up to the
    first token it gives no entry for)."""
    reply = httpx.post(f"{url}/completion", json={"prompt": tokens, "n_predict": n, "temperature": 0.0,
                                                  "top_k": 1, "lora": [{"id": 0, "scale": scale}], "n_probs": 1,
                                                  "cache_prompt": False, "return_tokens": True}, timeout=60)
    reply.raise_for_status()
    steps, tokens = reply.json()["completion_probabilities"], reply.json()["tokens"]
    # The server leaves out the entry of a token that ends inside a UTF-8 character (a random model picks byte
    # tokens), so entries and tokens agree only up to the first such token: the steps compared stop there.
    aligned = 0
    while aligned < min(len(steps), len(tokens)) and steps[aligned]["id"] == tokens[aligned]:
        aligned += 1
    return tokens[:aligned], [s["logprob"] for s in steps[:aligned]]


def _assert_same_distribution(url, base_gguf, tokens, lora, scale):
    """Each token llama-server chose is the one the binding ranks first, at the same logprob, given the same
    prefix and decoded the same way (prompt in one batch, then one token at a time): within 0.05, for the
    threads' summing order, on a random model's nearly flat distribution."""
    chosen, logprobs = _served(url, tokens, 8, scale)
    assert chosen, "llama-server answered nothing"
    reference = _binding_logprobs(base_gguf, tokens + chosen, lora, prompt=len(tokens))
    for i, (token, logprob) in enumerate(zip(chosen, logprobs, strict=True)):
        row = reference[len(tokens) - 1 + i]
        assert abs(row[token] - logprob) < 0.05, f"step {i}: {row[token]:.4f} against the server's {logprob:.4f}"
        assert row[token] >= row.max() - 0.05, f"step {i}: the server chose a token the binding ranks lower"


@pytest.mark.parametrize("arch", ["qwen2", "phi3"])
def test_import_chat_train_export_and_serve_a_non_llama_model(arch, cli, staff, tmp_path, monkeypatch):
    from llama_cpp import Llama

    from appliance.artifacts.gguf_lora import convert
    from appliance.serve.llama_server_build import find

    folder = build(arch, tmp_path / f"tiny-{arch}", tmp_path / "tokenizers")
    staff.login("alice")
    imported = cli("models", "import", folder, "--name", f"tiny-{arch}", "--json")
    assert imported.code == 0, imported.err
    record = json.loads(imported.out)
    assert record["gguf_file"] == "gguf/model-Q8_0.gguf" and record["architecture"].lower().startswith(arch[:4])
    chat = cli("chat", f"tiny-{arch}", "My laptop will not start.", "--max-tokens", "4", "--json")
    assert chat.code == 0, chat.err

    staff.login("erin")
    assert cli("data", "ingest", ROOT / "examples" / "helpdesk.jsonl", "--name", "hd").code == 0
    policies = installed_policies(tmp_path / "policies", {"training": {
        "  - {name: smollm2, digest: embedded}":
            f"  - {{name: smollm2, digest: embedded}}\n  - {{name: tiny-{arch}, digest: {record['digest']}}}"}})
    monkeypatch.setenv("APPLIANCE_POLICIES", str(policies))
    if arch == "qwen2":  # the same model without a chat template: a base model, told apart before training
        staff.login("alice")
        plain = build(arch, tmp_path / "plain", tmp_path / "tokenizers", chat_template=False)
        assert cli("models", "import", plain, "--name", "plain").code == 0
        staff.login("erin")
        digest = json.loads(cli("models", "show", "plain", "--json").out)["digest"]
        policies = installed_policies(tmp_path / "policies-plain", {"training": {
            "  - {name: smollm2, digest: embedded}": f"  - {{name: plain, digest: {digest}}}"}})
        monkeypatch.setenv("APPLIANCE_POLICIES", str(policies))
        refused = cli("train", RECIPE, "--dataset", "hd", "--base", "plain", "--max-steps", "2")
        assert refused.code == 2 and "model 'plain' carries no chat template (a base model)" in refused.err
        assert "give the recipe a chat_template, or train on a dataset in the text format" in refused.err
        monkeypatch.setenv("APPLIANCE_POLICIES", str(tmp_path / "policies"))
    trained = cli("train", RECIPE, "--dataset", "hd", "--base", f"tiny-{arch}", "--max-steps", "2", "--name",
                  f"tiny-{arch}-run", "--framework", "trl", "--json")
    assert trained.code == 0, trained.err
    run = json.loads(trained.out)
    assert run["status"] == "succeeded"

    home = staff.home
    base_gguf = home / "models" / f"tiny-{arch}" / record["gguf_file"]
    adapter_gguf = tmp_path / "adapter.gguf"
    summary = convert(home / run["path"] / "adapter", home / "models" / f"tiny-{arch}" / "hf", adapter_gguf,
                      base_gguf)
    assert summary["rank"] == 16 and summary["tensors"] == 2 * 2 * (4 if arch == "phi3" else 7)

    llm = Llama(model_path=str(base_gguf), n_ctx=256, verbose=False, vocab_only=True)
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    llm.close()
    port = free_port()
    server = subprocess.Popen([str(find()), "--model", str(base_gguf), "--lora", str(adapter_gguf),
                               "--lora-init-without-apply", "--host", "127.0.0.1", "--port", str(port),
                               "--ctx-size", "256", "--parallel", "1", "--threads", "2", "--offline", "--no-webui",
                               "--seed", "0", "--log-verbosity", "2"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama-server did not become healthy"
            time.sleep(0.2)
        loaded = httpx.get(f"{url}/lora-adapters", timeout=5).json()
        assert [a["path"] for a in loaded] == [str(adapter_gguf)]
        _assert_same_distribution(url, base_gguf, tokens, adapter_gguf, 1.0)
        _assert_same_distribution(url, base_gguf, tokens, None, 0.0)
    finally:
        server.terminate()
        server.wait(timeout=30)
