"""The llama.cpp backend through llama-cpp-python: load a registered GGUF (digest checked first), chat."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Settings
from appliance.digests import sha256_file
from appliance.errors import InputError, IntegrityError
from appliance.models.registry import ModelFile, RegisteredModel, model_dir


@dataclass(frozen=True)
class Completion:
    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def verified_gguf(settings: Settings, model: RegisteredModel, files: list[ModelFile]) -> Path:
    """The model's GGUF path, after checking its bytes against the registry's digest."""
    if not model.gguf_file:
        raise InputError(f"model {model.name!r} has no GGUF file; llama.cpp cannot serve it")
    path = model_dir(settings, model) / model.gguf_file
    recorded = next((f.sha256 for f in files if f.relpath == model.gguf_file), None)
    if not path.is_file():
        raise IntegrityError(f"{path}: missing; the registry records it for model {model.name!r}")
    if recorded is None or sha256_file(path) != recorded:
        raise IntegrityError(f"{path}: sha256 differs from the registry's record; refusing to load it")
    return path


def load(settings: Settings, gguf: Path, *, lora_path: Path | None = None):
    from llama_cpp import Llama

    threads = settings.file.llama.n_threads or os.cpu_count() or 1
    return Llama(model_path=str(gguf), n_ctx=settings.file.llama.n_ctx, n_threads=threads,
                 n_threads_batch=threads, lora_path=str(lora_path) if lora_path else None,
                 seed=0, verbose=False)


def chat(llm, model_name: str, prompt: str, *, system: str | None = None, max_tokens: int = 128,
         temperature: float = 0.0) -> Completion:
    """One greedy (by default) chat completion."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    start = time.perf_counter()
    out = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=temperature)
    elapsed = time.perf_counter() - start
    usage = out.get("usage", {})
    return Completion(model=model_name, text=out["choices"][0]["message"]["content"] or "",
                      prompt_tokens=int(usage.get("prompt_tokens", 0)),
                      completion_tokens=int(usage.get("completion_tokens", 0)), seconds=elapsed)
