"""PEFT LoRA adapter -> llama.cpp's GGUF LoRA adapter, by llama.cpp's own `convert_lora_to_gguf.py`.

The format (llama.cpp's `llama-adapter.cpp`): a GGUF file with `general.type = "adapter"`, `adapter.type =
"lora"`, `adapter.lora.alpha`, the base model's architecture, and for every adapted weight `W` two tensors
`W.lora_a` and `W.lora_b`, named as the base GGUF names `W`; llama.cpp scales the product by alpha / rank, as
PEFT does without rsLoRA. llama.cpp's converter maps each architecture's projection names and reorders what
its GGUF reorders (the rotary rows of Llama's query and key), from the same model classes that converted the
base. What llama.cpp would not apply the same way (DoRA, rsLoRA, other PEFT methods, embeddings) is refused
here first, naming the cause; the result is checked against the base GGUF's tensors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from appliance.errors import InputError
from appliance.models import llama_tools

_LORA_TENSOR = re.compile(r"\.lora_[AB]\.weight$")


def convert(adapter_dir: Path, base_hf_dir: Path, out_path: Path, base_gguf: Path | None = None) -> dict:
    """Write the GGUF LoRA for a PEFT adapter; returns a summary (tensors, rank, alpha, architecture)."""
    import gguf
    from safetensors import safe_open

    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InputError(f"{path}: missing; a PEFT adapter folder has adapter_config.json and "
                             "adapter_model.safetensors")
    config = json.loads(config_path.read_text())
    if config.get("peft_type") != "LORA":
        raise InputError(f"{config_path}: peft_type {config.get('peft_type')!r}; only LORA adapters export to GGUF")
    for flag in ("use_dora", "use_rslora"):
        if config.get(flag):
            raise InputError(f"{config_path}: {flag} is set; llama.cpp's LoRA scales by alpha/rank and has no DoRA")
    with safe_open(weights_path, "np") as fh:
        names = list(fh.keys())
    for name in names:
        if not _LORA_TENSOR.search(name):
            raise InputError(f"{weights_path}: tensor {name!r} is not the LoRA A or B matrix of a projection "
                             "llama.cpp can adapt")
    llama_tools.lora_to_gguf(adapter_dir, base_hf_dir, out_path)
    reader = gguf.GGUFReader(out_path)
    arch = reader.fields["general.architecture"].contents()
    tensors = {t.name: t for t in reader.tensors}
    if base_gguf is not None:
        base = gguf.GGUFReader(base_gguf)
        base_arch = base.fields["general.architecture"].contents()
        known = {t.name for t in base.tensors}
        problem = None
        if arch != base_arch:
            problem = f"the adapter converted as {arch}, the base GGUF is {base_arch}"
        else:
            missing = sorted(n.rpartition(".lora_")[0] for n in tensors if n.rpartition(".lora_")[0] not in known)
            if missing:
                problem = f"the base GGUF has no tensor {missing[0]}; the adapter does not fit this base model"
        if problem:
            out_path.unlink(missing_ok=True)
            raise InputError(f"{base_gguf}: {problem}")
    ranks = {int(t.shape[1]) if t.name.endswith(".lora_a") else None for t in tensors.values()} - {None}
    return {"tensors": len(tensors), "rank": min(ranks) if ranks else None,
            "alpha": float(config["lora_alpha"]), "architecture": arch}
