"""Inference-time model rewrites: Conv+BN folding, channels_last and an optional ``torch.compile``.

Folding is the official ``fuse_model`` (reference §7.3): every ``ConvBNAct`` gets a conv with bias equal to
``bn(conv(x))`` in eval mode, and its ``bn`` becomes an identity. Functions here return a new model and never
modify the one passed in, so a training model can be fused for a quick evaluation without being damaged.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from .blocks import ConvBNAct

logger = logging.getLogger(__name__)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``bn(conv(x))`` with the BN's running statistics (eval mode)."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        # y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, folded per output channel
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [out]
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    return fused


def fuse_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every ``ConvBNAct``'s BatchNorm folded into its conv.

    Outputs equal the unfused model's in eval mode (within float rounding, ~1e-5 relative); the copy is for
    inference only (its BNs are gone, so it cannot be trained further in the usual way).
    """
    fused = copy.deepcopy(model).eval()
    count = 0
    for module in fused.modules():
        if isinstance(module, ConvBNAct) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fold_conv_bn(module.conv, module.bn)
            module.bn = nn.Identity()
            count += 1
    logger.debug("folded %d BatchNorm layers", count)
    return fused


def optimize_for_inference(
    model: nn.Module, *, fuse: bool = True, channels_last: bool = True, compile: bool = False
) -> nn.Module:
    """A copy of ``model`` prepared for fast inference: BN folded, channels_last weights, optionally compiled.

    Run it under ``torch.inference_mode()``; inputs may stay contiguous NCHW, since the first conv converts
    them (giving channels_last inputs saves that one copy). ``compile`` wraps the copy in ``torch.compile``
    (Inductor): the convolutions stay oneDNN's, the elementwise work between them (SiLU, concatenation) runs
    in generated C++ kernels (the ``compiled`` rows of docs/benchmarks.md). The first call of each input shape
    compiles (about 15 s for YOLOX-S on CPU). Inductor's ``freezing`` (pre-packed convolutions) is not used:
    on 2 CPU threads it was not consistently faster (``python benchmarks/bench_compile_modes.py``), and it
    only takes effect when switched on globally.
    """
    fast = fuse_model(model) if fuse else copy.deepcopy(model).eval()
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    if compile:
        fast = torch.compile(fast, dynamic=False)
    return fast
