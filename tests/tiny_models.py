"""Tiny random-weight models of every supported architecture, written by transformers (`from_config`) with a real
tokenizer: the embedded model's (SmolLM2's byte-level BPE) or a SentencePiece model trained here on the
help-desk examples (`tests.helpers`). Nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
# Small, but with the features each architecture has: grouped-query attention (4 heads, 2 KV heads), untied
# output head where the architecture allows it, two layers.
_COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.08)


def config_for(arch: str, vocab_size: int, bos: int, eos: int):
    import transformers as t

    ids = dict(vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    if arch == "llama":
        return t.LlamaConfig(**_COMMON, **ids, tie_word_embeddings=False)
    if arch == "mistral":
        return t.MistralConfig(**_COMMON, **ids, head_dim=16, sliding_window=None, tie_word_embeddings=False)
    if arch == "qwen2":
        return t.Qwen2Config(**_COMMON, **ids, tie_word_embeddings=False)
    if arch == "qwen3":
        return t.Qwen3Config(**_COMMON, **ids, head_dim=16, tie_word_embeddings=False)
    if arch == "gemma2":
        return t.Gemma2Config(**_COMMON, **ids, head_dim=16, sliding_window=64, query_pre_attn_scalar=16)
    if arch == "gemma3":
        return t.Gemma3TextConfig(**_COMMON, **ids, head_dim=16, sliding_window=64, query_pre_attn_scalar=16)
    if arch == "phi3":
        return t.Phi3Config(**_COMMON, **ids, tie_word_embeddings=False)
    raise ValueError(arch)


def embedded_tokenizer(dest: Path) -> Path:
    """The embedded model's tokenizer and chat template, saved as a Hugging Face tokenizer folder."""
    from transformers import AutoTokenizer

    from appliance.models.sources import embedded_gguf

    _, gguf_path, _ = embedded_gguf("smollm2")
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    tok.save_pretrained(dest)
    return dest


# The embedded tokenizer, as transformers rebuilds it from the GGUF, encodes llama.cpp's probe text differently
# from SmolLM2's published tokenizer, so the converter's byte-level BPE path (Qwen, Gemma 3, Phi) does not
# recognise its pre-tokenizer; Llama's converter reads it as a Hugging Face vocabulary. The others take a
# SentencePiece tokenizer, as Gemma's and Phi-3's folders ship.
BPE = ("llama", "mistral")


def build(arch: str, dest: Path, tokenizers: Path, *, seed: int = 0, chat_template: bool = True) -> Path:
    """A random-weight `arch` model folder at `dest`: config.json, model.safetensors (f32), the tokenizer and
    the embedded model's chat template."""
    import torch
    from transformers import AutoModelForCausalLM

    from tests.helpers import sentencepiece_model, write_tokenizer_config

    bpe = tokenizers / "bpe"
    if not bpe.exists():
        embedded_tokenizer(bpe)
    template = json.loads((bpe / "tokenizer_config.json").read_text()).get("chat_template")
    if template is None and (bpe / "chat_template.jinja").is_file():
        template = (bpe / "chat_template.jinja").read_text()
    dest.mkdir(parents=True, exist_ok=True)
    if arch in BPE:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(bpe)
        vocab, bos, eos = len(tok), tok.bos_token_id or 0, tok.eos_token_id
        for item in bpe.iterdir():
            shutil.copy2(item, dest / item.name)
    else:
        sentencepiece_model(dest)
        write_tokenizer_config(dest, chat_template=template)
        vocab, bos, eos = 512, 2, 1
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config_for(arch, vocab, bos, eos), dtype=torch.float32)
    model.eval()
    model.save_pretrained(dest, safe_serialization=True)
    if not chat_template:
        _strip_template(dest)
    return dest


def _strip_template(dest: Path) -> None:
    (dest / "chat_template.jinja").unlink(missing_ok=True)
    config_path = dest / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
