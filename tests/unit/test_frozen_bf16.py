"""The frozen base's linear layers in bf16 on a CPU with native bf16: when it applies, what it converts, and that
the model computes the same thing within bf16's rounding while the adapters train in fp32."""

from pathlib import Path

import pytest

from appliance.train.recipe import load_recipe

pytestmark = pytest.mark.unit
RECIPES = Path(__file__).resolve().parents[2] / "policies" / "recipes"


@pytest.mark.parametrize("flags, native", [
    ("fpu vme sse sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),  # AVX512-BF16 (EPYC Genoa, Cooper Lake)
    ("fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8", True),  # AMX (Sapphire Rapids)
    ("fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni", False),  # AVX-512 without bf16
    ("fpu sse2 avx2 fma", False),
])
def test_native_bf16_is_read_from_the_cpus_flags(flags, native):
    from appliance.train.frozen_bf16 import native_bf16

    assert native_bf16(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n") is native


def test_a_frozen_bf16_linear_layer_takes_and_gives_fp32_and_passes_gradients_back():
    import torch

    from appliance.train.frozen_bf16 import FrozenBf16Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    layer = FrozenBf16Linear(linear)
    x = torch.randn(5, 64, requires_grad=True)
    y = layer(x)
    assert y.dtype == torch.float32 and layer.weight.dtype == torch.bfloat16 and not layer.weight.requires_grad
    reference = linear(x)
    assert (y - reference).abs().max() < 0.05 * reference.abs().max()  # bf16 rounding, not another function
    y.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and layer.weight.grad is None


def _tiny_lora(dtype):
    import torch
    import transformers as t
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = t.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=300, max_position_embeddings=128,
                           tie_word_embeddings=False)
    model = t.AutoModelForCausalLM.from_config(config).to(dtype)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM"))


def test_apply_puts_the_lora_base_layers_in_bf16_and_everything_else_in_fp32():
    import torch

    from appliance.train import frozen_bf16

    reference = _tiny_lora(torch.float32)
    model = _tiny_lora(torch.bfloat16)
    assert frozen_bf16.apply(model) == 7 * 2  # seven projections in each of two layers
    kinds = {}
    for name, param in model.named_parameters():
        kinds.setdefault(("base" if ".base_layer." in name else "lora" if "lora_" in name else "other",
                          param.dtype, param.requires_grad), []).append(name)
    assert set(kinds) == {("base", torch.bfloat16, False), ("lora", torch.float32, True),
                          ("other", torch.float32, False)}, kinds.keys()
    ids = torch.randint(0, 300, (2, 12))
    logits = model(input_ids=ids).logits
    assert logits.dtype == torch.float32
    # The same weights (the bf16 model is the fp32 one rounded): the same function within bf16's rounding.
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
    assert (logits - expected).abs().max() < 0.05 * expected.abs().max()
    logits.float().logsumexp(-1).mean().backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.dtype == torch.float32 and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("native, kind, expected", [(True, "lora", True), (False, "lora", False),
                                                    (True, "qlora", False)])
def test_cpu_runs_say_whether_the_frozen_base_runs_in_bf16(monkeypatch, native, kind, expected):
    from appliance.train import frameworks, frozen_bf16

    monkeypatch.setattr(frozen_bf16, "native_bf16", lambda cpuinfo=None: native)
    recipe, _ = load_recipe(RECIPES / f"smollm2-135m-{kind}-sft.yaml")
    choice = frameworks.choose("auto", recipe, cuda=False)
    assert choice.framework == "trl" and ("linear layers in bf16" in choice.reason) is expected, choice.reason
    assert frameworks.frozen_in_bf16(recipe, cuda=False) is expected
    assert not frameworks.frozen_in_bf16(recipe, cuda=True)  # on a GPU the Trainer's own bf16 runs
