"""A Hugging Face folder's GGUF for llama.cpp, made at import: llama.cpp's converter to f16 (bf16 for a bf16
model), then llama.cpp's quantizer to the type the serving policy names for the model's size.

Before anything is copied, a preflight reads the parameter count and the largest tensor from the safetensors
headers (no weights are loaded) and refuses, with the numbers, when the disk under APPLIANCE_HOME or the memory
cannot hold the import.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InputError, StorageError
from appliance.models import llama_tools
from appliance.models.sources import safetensors_header

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_PROCESS = 1536 * 1024**2  # the converter's own Python: torch, transformers and the conversion classes
GB = 1e9


@dataclass(frozen=True)
class Shape:
    parameters: int
    largest_tensor: int  # elements
    dtype: str  # the weights' dominant safetensors dtype
    source_bytes: int


@dataclass(frozen=True)
class Needs:
    disk: int
    memory: int


def read_shape(hf_dir: Path) -> Shape:
    """Parameters, largest tensor and dtype of a folder, from its safetensors headers alone."""
    params = largest = source = 0
    by_dtype: dict[str, int] = {}
    for path in sorted(hf_dir.rglob("*.safetensors")):
        source += path.stat().st_size
        for name, info in safetensors_header(path)[1].items():
            if name == "__metadata__":
                continue
            if not isinstance(info, dict) or not isinstance(info.get("shape"), list) or "dtype" not in info:
                raise InputError(f"{path}: tensor {name!r}: no shape and dtype in the safetensors header")
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
            params += count
            largest = max(largest, count)
            by_dtype[info["dtype"]] = by_dtype.get(info["dtype"], 0) + count
    dtype = max(by_dtype, key=by_dtype.get) if by_dtype else "F32"
    return Shape(params, largest, dtype, source)


def quantization_for(shape: Shape, policy) -> str:
    """The serving policy's type for a model of this size."""
    q = policy.quantization
    return q.large if shape.parameters >= q.large_from_parameters else q.small


def needs(shape: Shape, qtype: str) -> Needs:
    """Disk for the copied folder, the f16 GGUF and the quantized one; memory for the converter and quantizer
    (both stream tensor by tensor: the largest tensor in f32 twice, plus the Python that runs them)."""
    f16 = int(shape.parameters * 2)
    quant = int(shape.parameters * llama_tools.BYTES_PER_WEIGHT.get(qtype, 2.0))
    return Needs(disk=shape.source_bytes + f16 + quant, memory=2 * 4 * shape.largest_tensor + _PROCESS)


def available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def preflight(shape: Shape, qtype: str, where: Path, source: Path) -> Needs:
    """Refuse, naming the numbers, an import the disk under `where` or the memory cannot hold."""
    need = needs(shape, qtype)
    while not where.exists() and where != where.parent:  # the home's tmp/ is made on first use
        where = where.parent
    free = shutil.disk_usage(where).free
    if need.disk > free:
        raise StorageError(f"{source}: importing needs {need.disk / GB:.1f} GB free under {where} (the folder "
                           f"{shape.source_bytes / GB:.1f} GB, its f16 GGUF {shape.parameters * 2 / GB:.1f} GB, "
                           f"{qtype} {(need.disk - shape.source_bytes - shape.parameters * 2) / GB:.1f} GB); "
                           f"{free / GB:.1f} GB is free")
    mem = available_memory()
    if mem and need.memory > mem:
        raise StorageError(f"{source}: converting needs about {need.memory / GB:.1f} GB of memory (its largest "
                           f"tensor, {shape.largest_tensor:,} weights, twice in f32, and the converter); "
                           f"{mem / GB:.1f} GB is available")
    return need


def produce(hf_dir: Path, out: Path, qtype: str, shape: Shape, tmp_root: Path, say=print) -> dict:
    """Write `out`: the folder converted by llama.cpp and quantized to `qtype`. Returns what was made."""
    outtype = "bf16" if shape.dtype == "BF16" else "f16"
    with tempfile.TemporaryDirectory(prefix="gguf-", dir=tmp_root) as tmp:
        wide = Path(tmp) / f"model-{outtype}.gguf"
        count = (f"{shape.parameters / 1e9:.1f}B" if shape.parameters >= 1e9 else f"{shape.parameters / 1e6:.1f}M")
        say(f"converting with llama.cpp's convert_hf_to_gguf.py to {outtype} ({count} parameters)")
        llama_tools.hf_to_gguf(hf_dir, wide, outtype=outtype, expected_bytes=shape.parameters * 2)
        from appliance.digests import sha256_file

        wide_digest = sha256_file(wide)
        if qtype in ("F16", "BF16") and qtype.lower() == outtype:
            shutil.move(str(wide), out)
        else:
            say(f"quantizing with llama.cpp's quantizer to {qtype}")
            llama_tools.quantize(wide, out, qtype, parameters=shape.parameters)
    if not out.is_file():
        raise InputError(f"{hf_dir}: llama.cpp produced no GGUF")
    return {"type": qtype, "converted_as": outtype, "converted_sha256": wide_digest}
