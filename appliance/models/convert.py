"""A Hugging Face safetensors copy of a GGUF model, for training.

transformers loads a GGUF by dequantizing it, but then refuses `save_pretrained` ("quantized with gguf
and is not serializable"), so the weights are moved into a model built from the same config without
its quantization settings and saved from there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from appliance.errors import InputError

# Import-time chatter from optional CUDA kernels and deprecations; nothing a user can act on.
_QUIET = ("torchao", "torch.utils._pytree", "torch._dynamo", "transformers.modeling_utils")


def gguf_to_hf(gguf_path: Path, out_dir: Path) -> None:
    """Write config, fp32 safetensors weights, tokenizer and chat template of `gguf_path` into out_dir."""
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ["TQDM_DISABLE"] = "1"  # transformers' GGUF loader draws a bar per tensor
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                      dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{gguf_path}: transformers cannot convert this GGUF for training: {first}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
