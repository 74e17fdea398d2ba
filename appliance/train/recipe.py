"""Training recipes (`policies/recipes/<model>-<size>-<method>.yaml`), validated strictly: unknown keys are
refused and every error is reported at once, naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from appliance.config import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdapterSpec(_Strict):
    kind: Literal["lora", "qlora"] = "lora"  # qlora: 4-bit NF4 base through bitsandbytes
    rank: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1, le=4096)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                               "down_proj"], min_length=1)


class ScheduleSpec(_Strict):
    learning_rate: float = Field(default=3e-4, gt=0, le=1)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0, le=1)


class Recipe(_Strict):
    base_model: str = Field(min_length=1, description="registered model name")
    method: Literal["sft", "dpo", "orpo"]
    adapter: AdapterSpec = AdapterSpec()
    max_seq_length: int = Field(default=512, ge=32, le=131072)
    packing: bool = False
    batch_size: int = Field(default=4, ge=1, le=4096)
    gradient_accumulation: int = Field(default=1, ge=1, le=4096)
    schedule: ScheduleSpec = ScheduleSpec()
    max_steps: int | None = Field(default=None, ge=1)
    epochs: float | None = Field(default=None, gt=0, le=1000)
    seed: int = 0
    checkpoint_every: int = Field(default=50, ge=1)
    gradient_checkpointing: bool = Field(default=False, description="recompute activations in the backward pass: "
                                         "less memory for long sequences, about a third more compute")
    beta: float = Field(default=0.1, gt=0, le=10, description="dpo/orpo: preference strength")
    format_regex: str | None = Field(default=None, description="the answer format evaluation checks, if any")
    chat_template: str | None = Field(default=None, min_length=1, description="a Jinja chat template for a base "
                                      "model that carries none (rendered in transformers' sandbox)")

    @model_validator(mode="after")
    def _length(self) -> Recipe:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of max_steps or epochs")
        return self


def load_recipe(path: Path) -> tuple[Recipe, str]:
    """The recipe and the sha256 of its file."""
    return load_yaml_model(path, Recipe, "recipe")
