"""Checkpoints without pickle: the adapter as safetensors, optimizer tensors as safetensors with its
hyper-parameters as JSON, the scheduler and RNG state as JSON or safetensors, and the trainer's own JSON
state. The layout is the one transformers' Trainer resumes from for its parts (adapter_model.safetensors,
trainer_state.json); the rest is restored by the resume callback."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
RNG_TENSORS = "rng.safetensors"
RNG_JSON = "rng.json"


def save(directory: Path, model, optimizer, scheduler, state) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    model.save_pretrained(directory, safe_serialization=True)
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in opt["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    save_file(tensors, str(directory / OPTIMIZER_TENSORS))
    (directory / OPTIMIZER_JSON).write_text(json.dumps({"param_groups": opt["param_groups"], "scalars": scalars}))
    (directory / SCHEDULER_JSON).write_text(json.dumps(scheduler.state_dict(), default=str))
    save_file({"torch": torch.get_rng_state()}, str(directory / RNG_TENSORS))
    np_state = np.random.get_state()
    (directory / RNG_JSON).write_text(json.dumps({
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), np_state[2], np_state[3], np_state[4]]}))
    state.save_to_json(str(directory / "trainer_state.json"))


def restore(directory: Path, optimizer, scheduler) -> None:
    """Load optimizer, scheduler and RNG state saved by save() into live objects."""
    tensors = load_file(str(directory / OPTIMIZER_TENSORS))
    saved = json.loads((directory / OPTIMIZER_JSON).read_text())
    state: dict = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in saved["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    scheduler.load_state_dict(json.loads((directory / SCHEDULER_JSON).read_text()))
    torch.set_rng_state(load_file(str(directory / RNG_TENSORS))["torch"])
    rng = json.loads((directory / RNG_JSON).read_text())
    random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
    n = rng["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


def latest(run_dir: Path) -> Path | None:
    found = sorted((p for p in (run_dir / "checkpoints").glob("step-*") if (p / "trainer_state.json").is_file()),
                   key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None
