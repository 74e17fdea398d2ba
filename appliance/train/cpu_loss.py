"""A plain-torch stand-in for TRL's chunked log-probability kernel on CPU.

TRL 1.15's trainers compute per-token log-probabilities with a Triton kernel and call it whenever Triton is
importable (Unsloth installs it), which fails on a machine without a GPU ("0 active drivers"). On CPU the same
quantities are computed here with torch; on CUDA TRL's kernel is used unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class TorchChunkedLogProb:
    original = None  # TRL's own function, for tensors on a GPU

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None, logit_scale=1.0,
              outputs=("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")):
        if hidden.device.type != "cpu" and TorchChunkedLogProb.original is not None:
            return TorchChunkedLogProb.original.apply(hidden, weight, bias, targets, temperature, chunk_size,
                                                      final_logit_softcapping, logit_scale, outputs)
        logits = F.linear(hidden, weight, bias).float() * logit_scale
        if final_logit_softcapping:
            logits = torch.tanh(logits / final_logit_softcapping) * final_logit_softcapping
        logits = logits / temperature
        logp = torch.log_softmax(logits, dim=-1)
        log_probs = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1) if "entropy" in outputs else None
            log_sum_sq = torch.logsumexp(2 * logp, dim=-1) if "log_sum_sq_probs" in outputs else None
            mean_logits = logits.mean(-1) if "mean_logits" in outputs else None
            is_top1 = (logits.argmax(-1) == targets) if "is_top1" in outputs else None
        return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def install() -> None:
    """Route TRL's fused LM-head loss through TorchChunkedLogProb (idempotent)."""
    import trl.trainer.utils as trl_utils

    current = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if current is TorchChunkedLogProb:
        return
    TorchChunkedLogProb.original = current
    trl_utils._ChunkedLogProbFunction = TorchChunkedLogProb
