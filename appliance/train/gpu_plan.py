"""How much GPU memory a LoRA or QLoRA run needs, from a model's config.json alone (no weights read): for sizing
hardware before a 7-70B model is brought across the air gap (`appliance train --plan --model-config FILE`).

The terms, each in bytes:
- weights: LoRA keeps the base in bf16 (2 per parameter); QLoRA stores every decoder projection in 4-bit NF4 with
  double-quantised block scales (0.516 per parameter, bitsandbytes) and keeps the embeddings, the output head
  and the norms in bf16, as bitsandbytes does;
- the adapter's training state: 16 per trainable parameter (fp32 weight, gradient, Adam's two moments);
- activations with gradient checkpointing (what Unsloth and LLaMA-Factory run by default): each layer's input
  kept in bf16, one layer's working set recomputed at a time, and the output logits in bf16 (the loss is
  computed in chunks);
- the CUDA context and allocator slack: 0.3 GB.

Published "minimum memory" tables (Unsloth's requirements page, LLaMA-Factory's hardware table; see
docs/benchmarks.md) are for batch 1 at short sequences: `PUBLISHED` is that setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import InputError

NF4 = 0.516  # bytes per 4-bit weight with double-quantised scales (64-weight blocks)
CONTEXT = int(0.3e9)
PUBLISHED = {"batch_size": 1, "max_seq_length": 512, "rank": 16}


@dataclass(frozen=True)
class Shape:
    parameters: int
    embedding: int  # token embedding (and output head, when untied) parameters
    decoder_linear: int  # parameters in the decoder's projections (what QLoRA quantises)
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    kv: int  # width of the key and value projections
    q: int  # width of the query projection (heads x head_dim: not the hidden size in Gemma or Qwen3)


def shape_of(config: dict, where: str = "config.json") -> Shape:
    """Parameter counts from a transformers config (text models; a multimodal config's `text_config`)."""
    config = config.get("text_config") or config
    try:
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        inter, vocab = int(config["intermediate_size"]), int(config["vocab_size"])
        heads = int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or hidden // max(heads, 1))
        kv = int(config.get("num_key_value_heads") or heads) * head_dim
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: field {exc}: missing or not a number; a transformers text-model config "
                         "names hidden_size, num_hidden_layers, intermediate_size, vocab_size and "
                         "num_attention_heads") from None
    if min(hidden, layers, inter, vocab, heads, head_dim) <= 0:
        raise InputError(f"{where}: sizes must be positive (hidden_size, num_hidden_layers, intermediate_size, "
                         "vocab_size, num_attention_heads, head_dim)")
    q = heads * head_dim
    per_layer = hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * inter
    decoder = layers * per_layer
    tied = bool(config.get("tie_word_embeddings", False))
    embedding = vocab * hidden * (1 if tied else 2)
    norms = (2 * layers + 1) * hidden
    return Shape(decoder + embedding + norms, embedding, decoder, hidden, layers, inter, vocab, kv, q)


def trainable(shape: Shape, rank: int, modules: list[str]) -> int:
    widths = {"q_proj": (shape.hidden, shape.q), "k_proj": (shape.hidden, shape.kv),
              "v_proj": (shape.hidden, shape.kv), "o_proj": (shape.q, shape.hidden),
              "gate_proj": (shape.hidden, shape.intermediate), "up_proj": (shape.hidden, shape.intermediate),
              "down_proj": (shape.intermediate, shape.hidden)}
    return shape.layers * sum(rank * (a + b) for name, (a, b) in widths.items() if name in modules)


@dataclass(frozen=True)
class GpuPlan:
    kind: str
    parameters: int
    trainable_parameters: int
    weight_bytes: int
    training_state_bytes: int
    activation_bytes: int
    peak_bytes: int

    def lines(self) -> list[str]:
        gb = 1e9
        return [f"{self.kind} on a GPU: {self.parameters / 1e9:.2f}B parameters, "
                f"{self.trainable_parameters / 1e6:.1f}M trainable",
                f"GPU memory: ~{self.peak_bytes / gb:.1f} GB (weights {self.weight_bytes / gb:.1f}, adapter + "
                f"optimizer {self.training_state_bytes / gb:.2f}, activations {self.activation_bytes / gb:.2f}, "
                f"CUDA context {CONTEXT / gb:.1f})"]


def estimate(config: dict, kind: str, *, batch_size: int, max_seq_length: int, rank: int, modules: list[str],
             where: str = "config.json") -> GpuPlan:
    shape = shape_of(config, where)
    if kind == "qlora":
        weights = int(shape.decoder_linear * NF4 + (shape.parameters - shape.decoder_linear) * 2)
    else:
        weights = shape.parameters * 2
    train = trainable(shape, rank, modules)
    tokens = batch_size * max_seq_length
    checkpoints = tokens * shape.hidden * 2 * shape.layers
    working = tokens * (10 * shape.hidden + 3 * shape.intermediate) * 2
    logits = tokens * shape.vocab * 2
    activations = checkpoints + working + logits
    state = train * 16
    return GpuPlan(kind, shape.parameters, train, weights, state, activations, weights + state + activations + CONTEXT)
