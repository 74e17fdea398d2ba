"""What a run will cost before it starts: parameters, trainable parameters, peak memory, time."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.train.recipe import Recipe

_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "F64": 8, "I64": 8, "I32": 4}
_OVERHEAD = 600 * 1024**2  # the framework itself: torch, transformers, TRL, the tokenizer, the data


@dataclass
class Plan:
    parameters: int
    trainable_parameters: int
    weight_bytes: int
    training_state_bytes: int
    activation_bytes: int
    peak_bytes: int
    available_bytes: int
    steps: int
    seconds_per_step: float | None = None

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.available_bytes

    @property
    def estimated_seconds(self) -> float | None:
        return None if self.seconds_per_step is None else self.seconds_per_step * self.steps

    def as_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits, "estimated_seconds": self.estimated_seconds}

    def lines(self) -> list[str]:
        gib = 1024**3
        out = [f"parameters: {self.parameters:,} ({self.trainable_parameters:,} trainable, "
               f"{100 * self.trainable_parameters / max(self.parameters, 1):.2f}%)",
               f"peak memory: ~{self.peak_bytes / gib:.2f} GiB (weights {self.weight_bytes / gib:.2f}, adapter + "
               f"optimizer {self.training_state_bytes / gib:.2f}, activations {self.activation_bytes / gib:.2f}); "
               f"available {self.available_bytes / gib:.1f} GiB",
               f"steps: {self.steps}"]
        if self.seconds_per_step is not None:
            out.append(f"time: {self.seconds_per_step:.2f} s/step measured here, about "
                       f"{self.estimated_seconds / 60:.1f} min in all")
        return out


def _safetensors_parameters(hf_dir: Path) -> int:
    from appliance.models.sources import safetensors_header

    total = 0
    for path in hf_dir.glob("*.safetensors"):
        for name, info in safetensors_header(path)[1].items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= dim
            total += count
    return total


def estimate(hf_dir: Path, recipe: Recipe, steps: int, available: int, framework: str) -> Plan:
    config = json.loads((hf_dir / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    inter = config.get("intermediate_size", 4 * hidden)
    heads = config.get("num_attention_heads", 1)
    kv = config.get("num_key_value_heads", heads) * (hidden // heads)
    shapes = {"q_proj": (hidden, hidden), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (hidden, hidden),
              "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}
    r = recipe.adapter.rank
    trainable = layers * sum(r * (a + b) for name, (a, b) in shapes.items() if name in recipe.adapter.target_modules)
    params = _safetensors_parameters(hf_dir)
    bytes_per_weight = 0.56 if recipe.adapter.kind == "qlora" else (2 if framework == "unsloth" else 4)
    weights = int(params * bytes_per_weight)
    state = trainable * 16  # fp32 weight, gradient, and Adam's two moments
    tokens = recipe.batch_size * recipe.max_seq_length
    activations = tokens * hidden * layers * 4 * 12 + tokens * config.get("vocab_size", 32000) * 4 * 2
    peak = weights + state + activations + _OVERHEAD
    return Plan(params, trainable, weights, state, activations, peak, available, steps)
