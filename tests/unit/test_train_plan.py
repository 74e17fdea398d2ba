"""The plan's arithmetic and the refusal of runs that will not fit, on a small model folder made here."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from appliance.train.plan import estimate
from appliance.train.recipe import Recipe
from appliance.train.run import _steps

pytestmark = pytest.mark.unit


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 1000}))
    save_file({"a": np.zeros((1000, 64), np.float32), "b": np.zeros((64, 128), np.float32)},
              str(tmp_path / "model.safetensors"))
    return tmp_path


def test_parameters_and_trainable_parameters(tiny):
    recipe = Recipe(base_model="x", method="sft", max_steps=10,
                    adapter={"rank": 4, "target_modules": ["q_proj", "k_proj", "down_proj"]})
    plan = estimate(tiny, recipe, 10, available=10**12, engine="trl")
    assert plan.parameters == 1000 * 64 + 64 * 128
    kv = 2 * (64 // 4)
    assert plan.trainable_parameters == 2 * 4 * ((64 + 64) + (64 + kv) + (128 + 64))
    assert plan.weight_bytes == plan.parameters * 4 and plan.fits
    qlora = estimate(tiny, recipe.model_copy(update={"adapter": recipe.adapter.model_copy(update={"kind": "qlora"})}),
                     10, available=10**12, engine="trl")
    assert qlora.weight_bytes < plan.weight_bytes / 6


def test_a_run_that_does_not_fit_says_so_with_numbers(tiny):
    plan = estimate(tiny, Recipe(base_model="x", method="sft", max_steps=5), 5, available=1024, engine="trl")
    assert not plan.fits
    assert any("available 0.0 GiB" in line for line in plan.lines())
    assert plan.as_dict()["fits"] is False


def test_epochs_become_steps():
    recipe = Recipe(base_model="x", method="sft", epochs=2, batch_size=4, gradient_accumulation=2)
    assert _steps(recipe, 100) == 2 * 13
    assert _steps(Recipe(base_model="x", method="sft", max_steps=7), 100) == 7
