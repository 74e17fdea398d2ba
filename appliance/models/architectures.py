"""The model architectures the appliance takes end to end (import, chat, train, package, serve), and what differs
between them: the GGUF architecture llama.cpp knows each by, and the names of the projections a LoRA adapts.

Anything else is refused at import, naming the architecture and this list: an architecture is only here once
its parity test (transformers against llama.cpp, with and without a trained LoRA, and merged) passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InputError


@dataclass(frozen=True)
class Architecture:
    hf: str  # transformers' class name in config.json's `architectures`
    gguf: str  # llama.cpp's `general.architecture`
    # Projections named as the recipe names them (Llama's) -> this architecture's module, where it differs.
    fused: tuple[tuple[str, str], ...] = ()


SUPPORTED: dict[str, Architecture] = {a.hf: a for a in (
    Architecture("LlamaForCausalLM", "llama"),
    Architecture("MistralForCausalLM", "llama"),
    Architecture("Qwen2ForCausalLM", "qwen2"),
    Architecture("Qwen3ForCausalLM", "qwen3"),
    Architecture("Gemma2ForCausalLM", "gemma2"),
    Architecture("Gemma3ForCausalLM", "gemma3"),
    Architecture("Phi3ForCausalLM", "phi3", fused=(("q_proj", "qkv_proj"), ("k_proj", "qkv_proj"),
                                                   ("v_proj", "qkv_proj"), ("gate_proj", "gate_up_proj"),
                                                   ("up_proj", "gate_up_proj"))),
)}
GGUF_ARCHITECTURES = sorted({a.gguf for a in SUPPORTED.values()})


def supported_list() -> str:
    return ", ".join(SUPPORTED)


def of_config(config: dict, where: Path | str) -> Architecture:
    """The architecture a transformers config.json names, or an InputError naming it and what is supported."""
    names = config.get("architectures") or []
    name = names[0] if names else None
    if name is None:
        raise InputError(f"{where}: field architectures: missing; supported: {supported_list()}")
    arch = SUPPORTED.get(name)
    if arch is None:
        raise InputError(f"{where}: architecture {name} is not supported; supported: {supported_list()}")
    return arch


def of_folder(hf_dir: Path) -> Architecture:
    path = hf_dir / "config.json"
    try:
        config = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable: {exc}") from None
    return of_config(config, path)


def check_gguf(architecture: str | None, where: Path | str) -> str:
    if architecture not in GGUF_ARCHITECTURES:
        raise InputError(f"{where}: GGUF architecture {architecture or 'unnamed'} is not supported; supported: "
                         f"{', '.join(GGUF_ARCHITECTURES)}")
    return architecture


def target_modules(hf_dir: Path, requested: list[str]) -> list[str]:
    """The recipe's projections (Llama's names) as this model's modules: Phi-3's fused q/k/v and gate/up."""
    try:
        arch = of_folder(hf_dir)
    except InputError:
        return list(requested)  # a folder the registry took before this check: train on the names as given
    mapping = dict(arch.fused)
    out: list[str] = []
    for name in requested:
        module = mapping.get(name, name)
        if module not in out:
            out.append(module)
    return out


def chat_template_of_folder(hf_dir: Path) -> str | None:
    """The chat template a Hugging Face folder carries (chat_template.jinja, chat_template.json or
    tokenizer_config.json's field), or None."""
    jinja = hf_dir / "chat_template.jinja"
    if jinja.is_file():
        try:
            return jinja.read_text("utf-8") or None
        except UnicodeDecodeError:
            raise InputError(f"{jinja}: not UTF-8 text") from None
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = hf_dir / name
        if path.is_file():
            try:
                template = json.loads(path.read_text("utf-8")).get("chat_template")
            except (ValueError, AttributeError):
                continue
            if isinstance(template, list):  # named templates: the default one
                template = next((t.get("template") for t in template
                                 if isinstance(t, dict) and t.get("name") == "default"), None)
            if isinstance(template, str) and template.strip():
                return template
    return None
