"""Every supported architecture, from a transformers folder to llama.cpp: converted by llama.cpp's own converter,
its logits matched against transformers' on the same tokens (f32 on both sides), with greedy tokens agreeing;
then with a LoRA adapter (random A and B, so the update is not zero) converted by llama.cpp's LoRA converter,
against PEFT; then with that adapter merged into the base GGUF (`serve/merge.py`), against PEFT's merge."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.tiny_models import ARCHITECTURES, build

pytestmark = pytest.mark.integration

TOKENS = [1, 17, 305, 42, 99, 7, 250, 3, 64, 128, 11, 200]
# Relative to the largest logit: f32 on both sides differs only by summation order.
TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenizers")


def _torch_logits(model, tokens):
    import torch

    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float().numpy()


def _llama_logits(gguf_path, tokens, lora=None):
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf_path), n_ctx=64, n_batch=64, logits_all=True, n_threads=2, verbose=False,
                lora_path=str(lora) if lora else None)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close()


def _assert_close(ours, theirs, what):
    scale = max(float(np.abs(theirs).max()), 1e-6)
    worst = float(np.abs(ours - theirs).max()) / scale
    assert worst <= TOLERANCE, f"{what}: logits differ by {worst:.2e} of the largest logit"
    agree = float((ours.argmax(-1) == theirs.argmax(-1)).mean())
    assert agree == 1.0, f"{what}: greedy tokens agree at {agree:.0%} of positions"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_llama_cpp_matches_transformers_with_and_without_a_lora_and_merged(arch, tokenizers, tmp_path):
    import gguf
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from appliance.artifacts.gguf_lora import convert
    from appliance.models import llama_tools
    from appliance.models.architectures import chat_template_of_folder, target_modules
    from appliance.serve.merge import merge_lora

    folder = build(arch, tmp_path / arch, tokenizers)
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    tokens = [t % vocab for t in TOKENS]

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    base_logits = _torch_logits(model, tokens)
    torch.manual_seed(1)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=target_modules(folder, [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), init_lora_weights=False)
    peft_model = get_peft_model(model, config).eval()
    with torch.no_grad():  # PEFT's random B is large for weights this small: a tenth still moves every logit
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.1)
    lora_logits = _torch_logits(peft_model, tokens)
    assert float(np.abs(lora_logits - base_logits).max()) > 10 * TOLERANCE * float(np.abs(base_logits).max())
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)

    # The two converters are separate processes: run them side by side.
    with ThreadPoolExecutor(2) as pool:
        base_job = pool.submit(llama_tools.hf_to_gguf, folder, tmp_path / "base-f32.gguf", outtype="f32")
        lora_job = pool.submit(convert, adapter, folder, tmp_path / "adapter.gguf")  # what packaging runs
        base_gguf, summary = base_job.result(), lora_job.result()
    adapter_gguf = tmp_path / "adapter.gguf"
    fields = gguf.GGUFReader(base_gguf).fields
    assert fields["tokenizer.chat_template"].contents() == chat_template_of_folder(folder)
    _assert_close(_llama_logits(base_gguf, tokens), base_logits, f"{arch} base")
    assert summary["rank"] == 8 and summary["tensors"] == 2 * 2 * len(config.target_modules)
    _assert_close(_llama_logits(base_gguf, tokens, lora=adapter_gguf), lora_logits, f"{arch} with the LoRA")

    merged = merge_lora(base_gguf, adapter_gguf, tmp_path / "merged.gguf", quantization="F32")
    _assert_close(_llama_logits(merged, tokens), lora_logits, f"{arch} merged")
