"""The frozen base model's linear layers in bf16, on a CPU with native bf16 (AVX512-BF16 or AMX).

A LoRA step on CPU is mostly the base model's matrix products, forward and back through weights that never
change. Those run in bf16 here (the CPU's bf16 instructions, through oneDNN), each taking its input in fp32 and
giving its output back in fp32; everything that learns or adds up stays fp32: the LoRA adapters and their
gradients, the residual stream, the norms, attention and the loss. Casting the whole model to bf16 (TRL's
`bf16=True`, Unsloth's CPU path) also rounds the adapters' small early contributions away and ends 4% higher in
loss after 20 steps; this keeps the loss of the fp32 run (bench/train_bench.py, docs/benchmarks.md). The base is
loaded in bf16, so its weights take half the memory of fp32's. On a CPU without native bf16 the same products
would be emulated, far slower: there the model stays fp32.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.is_file() else ""


def native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU multiplies bf16 natively (its flags, as /proc/cpuinfo lists them)."""
    if cpuinfo is None:
        cpuinfo = _cpuinfo()
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in _FLAGS)


class FrozenBf16Linear(nn.Module):
    """A frozen linear layer whose product runs in bf16 between fp32 input and output."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        self.bias = (None if linear.bias is None
                     else nn.Parameter(linear.bias.detach().to(torch.bfloat16), requires_grad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)


def apply(model) -> int:
    """In a PEFT model loaded in bf16: each LoRA layer's base linear layer becomes a FrozenBf16Linear, and every
    other weight and buffer fp32. Returns how many layers run in bf16."""
    from peft.tuners.lora import LoraLayer

    converted = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and isinstance(module.base_layer, nn.Linear):
            module.base_layer = FrozenBf16Linear(module.base_layer)
            converted += 1
    for module in model.modules():
        if isinstance(module, FrozenBf16Linear):
            continue
        for param in module.parameters(recurse=False):
            if param.is_floating_point() and param.dtype != torch.float32:
                param.data = param.data.float()
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != torch.float32:
                module._buffers[name] = buffer.float()
    return converted
