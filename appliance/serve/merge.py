"""A base GGUF with one LoRA adapter folded into its weights: W' = W + (alpha / r) * B @ A for every adapted
tensor, written in the base tensor's own type or the one asked for (the other tensors and all metadata copied
unchanged). Requantising to the base's 4 bits rounds most of an adapter's small deltas away; Q8_0 keeps them.

Serving the merged model costs a second copy of the base in memory but no extra matmuls per token, so a hot
adapter decodes at the base model's speed. Both inputs are already in llama.cpp's tensor layout (the adapter
GGUF was converted for it), so no permutation is needed. Pure NumPy through the `gguf` package."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class MergeError(ValueError):
    pass


def _adapter(path: Path):
    import gguf

    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.")}
    if fields.get("general.type") != "adapter" or fields.get("adapter.type") != "lora":
        raise MergeError(f"{path}: not a GGUF LoRA adapter")
    alpha = float(fields.get("adapter.lora.alpha", 0.0))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for t in reader.tensors:
        base, _, part = t.name.rpartition(".lora_")
        if part not in ("a", "b"):
            raise MergeError(f"{path}: unexpected tensor {t.name}")
        pairs.setdefault(base, {})[part] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    return alpha, pairs


def merge_lora(base: Path, adapter: Path, out: Path, *, scale: float = 1.0, quantization: str | None = None) -> Path:
    """Write `out` (through a temporary file, then renamed): `base` with `adapter` merged at `scale`, adapted
    tensors written as `quantization` (a GGML type name such as "Q8_0"; default: each base tensor's own)."""
    import gguf

    try:
        qtype = gguf.GGMLQuantizationType[quantization] if quantization else None
    except KeyError:
        raise MergeError(f"unknown GGML type {quantization!r}") from None

    alpha, pairs = _adapter(adapter)
    reader = gguf.GGUFReader(base)
    tensors = []  # (name, data, type) in the base's order
    for t in reader.tensors:
        data, kind = t.data, t.tensor_type
        if t.name in pairs:
            a, b = pairs[t.name].get("a"), pairs[t.name].get("b")
            if a is None or b is None:
                raise MergeError(f"{adapter}: {t.name} lacks lora_a or lora_b")
            weight = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            if b.shape[0] != weight.shape[0] or a.shape[1] != weight.shape[1] or a.shape[0] != b.shape[1]:
                raise MergeError(f"{adapter}: {t.name} shapes {b.shape} x {a.shape} do not fit {weight.shape}")
            rank = a.shape[0]
            weight += (scale * (alpha / rank if alpha else 1.0)) * (b @ a)
            kind = qtype or t.tensor_type
            if kind == gguf.GGMLQuantizationType.F32:
                data = weight
            elif kind == gguf.GGMLQuantizationType.F16:
                data = weight.astype(np.float16)
            else:
                data = gguf.quants.quantize(weight, kind)
        tensors.append((t.name, data, kind))
    missing = sorted(set(pairs) - {name for name, _, _ in tensors})
    if missing:
        raise MergeError(f"{adapter}: adapts tensors the base lacks: {', '.join(missing[:3])}")

    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, reader.fields["general.architecture"].contents(), endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub)
    for name, data, kind in tensors:
        writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes, kind)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _, data, _ in tensors:
            writer.write_tensor_data(data, tensor_endianess=reader.endianess)
        writer.close()
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
