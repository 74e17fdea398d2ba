"""Small real model files made on the fly: a valid GGUF and a Hugging Face folder with safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


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


CHAT_TEMPLATE = ("{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
                 "{% endfor %}{% if add_generation_prompt %}<start_of_turn>assistant\n{% endif %}")
_TOKENIZER_CACHE: dict[str, Path] = {}


def sentencepiece_model(dest_dir: Path) -> Path:
    """tokenizer.model: a 512-piece SentencePiece BPE trained on the repository's example data (once per
    process), with pad 0, eos 1, bos 2, unk 3, and Gemma's turn markers and Phi-3's end markers as their own
    pieces (llama.cpp looks `<|endoftext|>` up in a model it names Phi-3)."""
    import shutil
    import tempfile

    if "sp" not in _TOKENIZER_CACHE:
        import sentencepiece as spm

        lines = [line for path in sorted((REPO / "examples").glob("*.jsonl"))
                 for line in path.read_text("utf-8").splitlines()]
        folder = Path(tempfile.mkdtemp(prefix="sp-tokenizer-"))
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(folder / "tokenizer"),
                                       vocab_size=512, model_type="bpe", byte_fallback=True, pad_id=0, eos_id=1,
                                       bos_id=2, unk_id=3, minloglevel=2,
                                       user_defined_symbols=["<start_of_turn>", "<end_of_turn>", "<|end|>",
                                                             "<|endoftext|>"])
        _TOKENIZER_CACHE["sp"] = folder / "tokenizer.model"
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_TOKENIZER_CACHE["sp"], dest_dir / "tokenizer.model")
    return dest_dir / "tokenizer.model"


def write_tokenizer_config(root: Path, *, chat_template: str | None = CHAT_TEMPLATE, cls: str = "LlamaTokenizer"
                           ) -> None:
    config = {"tokenizer_class": cls, "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
              "unk_token": "<unk>", "add_bos_token": True}
    if chat_template:
        config["chat_template"] = chat_template
    (root / "tokenizer_config.json").write_text(json.dumps(config))


def write_hf_folder(root: Path, *, seed: int = 0, shards: int = 1, chat_template: str | None = CHAT_TEMPLATE,
                    architecture: str = "LlamaForCausalLM") -> Path:
    """A real, tiny Llama (one layer, 32 wide, random weights written with NumPy) with a SentencePiece
    tokenizer: llama.cpp's converter and transformers both load it."""
    from safetensors.numpy import save_file

    root.mkdir(parents=True, exist_ok=True)
    hidden, inter, vocab = 32, 64, 512
    config = {"architectures": [architecture], "model_type": "llama", "hidden_size": hidden,
              "intermediate_size": inter, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 2, "vocab_size": vocab, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "tie_word_embeddings": False, "bos_token_id": 2, "eos_token_id": 1,
              "pad_token_id": 0, "hidden_act": "silu", "torch_dtype": "float32"}
    (root / "config.json").write_text(json.dumps(config))
    sentencepiece_model(root)
    write_tokenizer_config(root, chat_template=chat_template)
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.08).astype(np.float32)

    layer = "model.layers.0."
    tensors = {"model.embed_tokens.weight": w(vocab, hidden), "lm_head.weight": w(vocab, hidden),
               "model.norm.weight": np.ones(hidden, np.float32),
               layer + "input_layernorm.weight": np.ones(hidden, np.float32),
               layer + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
               **{f"{layer}self_attn.{p}_proj.weight": w(hidden, hidden) for p in "qkvo"},
               layer + "mlp.gate_proj.weight": w(inter, hidden), layer + "mlp.up_proj.weight": w(inter, hidden),
               layer + "mlp.down_proj.weight": w(hidden, inter)}
    if shards == 1:
        save_file(tensors, str(root / "model.safetensors"))
    else:
        weight_map = {}
        names = sorted(tensors)
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: tensors[k] for k in names[i::shards]}
            save_file(part, str(root / name))
            weight_map.update({k: name for k in part})
        (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return root
