"""Small real model files made on the fly: a valid GGUF and a Hugging Face folder with safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_gguf(path: Path, arch: str = "llama", tensors: int = 2) -> Path:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_name("tiny test model")
    for i in range(tensors):
        writer.add_tensor(f"blk.{i}.weight", np.arange(64, dtype=np.float32).reshape(8, 8) + i)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_hf_folder(root: Path, *, seed: int = 0, shards: int = 1) -> Path:
    from safetensors.numpy import save_file

    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    (root / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    rng = np.random.default_rng(seed)
    if shards == 1:
        save_file({"w": rng.standard_normal((4, 4)).astype(np.float32)}, str(root / "model.safetensors"))
    else:
        weight_map = {}
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({f"w{i}": rng.standard_normal((4, 4)).astype(np.float32)}, str(root / name))
            weight_map[f"w{i}"] = name
        (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return root
