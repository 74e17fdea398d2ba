"""PEFT LoRA adapter -> llama.cpp's GGUF LoRA adapter format, written with the `gguf` package.

The format (llama.cpp's `convert_lora_to_gguf.py` and `llama-adapter.cpp` define it): a GGUF file with
`general.type = "adapter"`, `adapter.type = "lora"`, `adapter.lora.alpha`, the base model's architecture, and
for every adapted weight `W` of the base GGUF two tensors `W.lora_a` (rank x in) and `W.lora_b` (out x rank),
named as the base GGUF names `W` (`blk.N.attn_q.weight`, ...). llama.cpp scales the product by alpha / rank,
as PEFT does without rsLoRA.

Llama-family GGUF files store the query and key projections with their rows reordered for llama.cpp's rotary
embedding; the adapter's `lora_b` for those projections gets the same reordering, so that B.A matches the
base weight it is added to.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from appliance.errors import InputError

_PROJECTIONS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                "mlp.down_proj": "ffn_down"}
_PEFT_NAME = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)"
                        r"\.lora_([AB])\.weight$")
_LLAMA_FAMILY = {"llama": "llama"}  # Hugging Face model_type -> GGUF architecture


def rotary_row_order(weight: np.ndarray, heads: int) -> np.ndarray:
    """The rows of a query or key projection in the order llama.cpp's Llama GGUF files keep them: within each
    head, the two rotary halves interleaved."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def convert(adapter_dir: Path, base_hf_dir: Path, out_path: Path, base_gguf: Path | None = None) -> dict:
    """Write the GGUF LoRA for a PEFT adapter; returns a summary (tensors, rank, alpha). Refuses, naming the
    cause, what llama.cpp could not apply the same way (DoRA, rsLoRA, other architectures, other modules)."""
    import gguf
    from safetensors.numpy import load_file

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
    base = json.loads((base_hf_dir / "config.json").read_text())
    arch = _LLAMA_FAMILY.get(base.get("model_type", ""))
    if arch is None:
        raise InputError(f"{base_hf_dir / 'config.json'}: model_type {base.get('model_type')!r}; GGUF LoRA export "
                         f"supports {', '.join(sorted(_LLAMA_FAMILY))}")
    heads = int(base["num_attention_heads"])
    kv_heads = int(base.get("num_key_value_heads", heads))
    pairs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for name, tensor in load_file(weights_path).items():
        match = _PEFT_NAME.match(name)
        if not match:
            raise InputError(f"{weights_path}: tensor {name!r} is not the LoRA A or B matrix of a projection "
                             "llama.cpp can adapt")
        layer, projection, which = int(match.group(1)), match.group(2), match.group(3)
        pairs.setdefault((layer, projection), {})[which] = tensor.astype(np.float32)
    known = _gguf_tensor_names(base_gguf) if base_gguf else None
    rank = None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
        for (layer, projection), ab in sorted(pairs.items()):
            if set(ab) != {"A", "B"}:
                raise InputError(f"{weights_path}: layer {layer} {projection} has only lora_{''.join(ab)}")
            a, b = ab["A"], ab["B"]
            rank = rank or a.shape[0]
            if projection == "self_attn.q_proj":
                b = rotary_row_order(b, heads)
            elif projection == "self_attn.k_proj":
                b = rotary_row_order(b, kv_heads)
            target = f"blk.{layer}.{_PROJECTIONS[projection]}.weight"
            if known is not None and target not in known:
                raise InputError(f"{base_gguf}: has no tensor {target}; the adapter does not fit this base model")
            writer.add_tensor(f"{target}.lora_a", np.ascontiguousarray(a))
            writer.add_tensor(f"{target}.lora_b", np.ascontiguousarray(b))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o600)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"tensors": 2 * len(pairs), "rank": rank, "alpha": float(config["lora_alpha"]), "architecture": arch}


def _gguf_tensor_names(path: Path) -> set[str]:
    from gguf import GGUFReader

    return {t.name for t in GGUFReader(path).tensors}
