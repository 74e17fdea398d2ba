"""Shipped recipes load; broken ones are refused with every error at once."""

from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.train.recipe import load_recipe

pytestmark = pytest.mark.unit
RECIPES = Path(__file__).resolve().parents[2] / "policies" / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_load_and_say_how_to_run_them(path):
    recipe, digest = load_recipe(path)
    assert len(digest) == 64
    first = path.read_text().splitlines()[0]
    assert first == f"# appliance train policies/recipes/{path.name} " + first.split(path.name + " ", 1)[1]
    model, size, method = path.stem.split("-", 2)
    assert recipe.base_model == model and method.endswith(recipe.method)
    assert recipe.adapter.kind == method.split("-")[0]


def test_every_error_in_a_recipe_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base_model: smollm2\nmethod: ppo\nadapter: {kind: lora, rank: 0, colour: red}\n"
                    "max_steps: 10\nepochs: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_recipe(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ")
    for fragment in ("method:", "adapter.rank", "adapter.colour: unknown key"):
        assert fragment in msg


def test_steps_or_epochs_exactly_once(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("base_model: smollm2\nmethod: sft\n")
    with pytest.raises(ConfigError, match="give exactly one of max_steps or epochs"):
        load_recipe(path)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_the_trainer_recomputes_activations_only_when_the_recipe_asks(path, tmp_path):
    """TRL's configs default to gradient checkpointing (a third more compute); the appliance passes the recipe's
    choice, which is off unless it says so."""
    from appliance.train.frameworks import trainer_args

    recipe, _ = load_recipe(path)
    args = trainer_args(recipe, tmp_path, 3)
    assert args.gradient_checkpointing is False and args.max_steps == 3 and args.report_to == []
    asking = recipe.model_copy(update={"gradient_checkpointing": True})
    assert trainer_args(asking, tmp_path, 3).gradient_checkpointing is True
    # tokens/s in progress lines and run records count the tokens trained on, not the padding beside them
    assert args.include_num_input_tokens_seen == "non_padding"


@pytest.mark.parametrize("cuda, bf16, dtype", [(True, True, "bfloat16"), (True, False, "float32"),
                                               (False, False, "float32"), (False, True, "float32")])
def test_base_weights_are_bf16_on_a_gpu_that_has_it_and_fp32_otherwise(cuda, bf16, dtype):
    from appliance.train.frameworks import weights_dtype

    assert weights_dtype(cuda, bf16) == dtype


@pytest.mark.parametrize("requested, method, world, cuda, framework, why", [
    ("auto", "sft", 1, False, "trl", "on CPU, TRL in fp32"),
    ("auto", "dpo", 1, False, "trl", "trains sft only, the recipe is dpo"),
    ("auto", "orpo", 1, True, "trl", "trains sft only, the recipe is orpo"),
    ("auto", "sft", 2, True, "trl", "a distributed run (2 processes)"),
    ("trl", "sft", 1, True, "trl", "requested"),
])
def test_auto_picks_the_framework_measured_faster_for_the_device_and_method(requested, method, world, cuda,
                                                                           framework, why):
    from appliance.train.frameworks import choose

    recipe, _ = load_recipe(RECIPES / f"smollm2-135m-lora-{method}.yaml")
    choice = choose(requested, recipe, world, cuda=cuda)
    assert choice.framework == framework and why in choice.reason, choice


def test_a_cpu_run_on_auto_never_imports_unsloth():
    import subprocess
    import sys

    probe = ("import sys\nfrom appliance.train.frameworks import choose\n"
             "from appliance.train.recipe import load_recipe\n"
             f"recipe, _ = load_recipe({str(RECIPES / 'smollm2-135m-lora-sft.yaml')!r})\n"
             "print(choose('auto', recipe, cuda=False).framework, 'unsloth' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["trl", "False"], done.stderr[-2000:]
