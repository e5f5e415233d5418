"""BatchNorm calibration: give BN layers real data statistics without changing what the model computes in eval
mode.

Why: an official ONNX export has BN folded into the convolutions, so the import loads every Conv+BN block as
"identity BN + bias" (running_mean 0, running_var 1-eps, weight 1). That is exact in eval mode but wrong for
training: train-mode BN normalises by batch statistics and so throws away the folded scale and offset, and the
first training steps start far from the imported detector. Calibration re-parametrises each BN channel so that
its running statistics are the data's mean and variance while its eval-mode affine map stays the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

logger = logging.getLogger(__name__)


class _ChannelMoments:
    """Running per-channel sum and sum of squares of a BN layer's input (float64, over N, H, W)."""

    def __init__(self) -> None:
        self.count = 0
        self.total: Tensor | None = None
        self.total_sq: Tensor | None = None

    def __call__(self, _module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        x = inputs[0].detach().double().transpose(0, 1).flatten(1)  # [C, N*H*W]
        total, total_sq = x.sum(1), (x * x).sum(1)
        self.count += x.shape[1]
        self.total = total if self.total is None else self.total + total
        self.total_sq = total_sq if self.total_sq is None else self.total_sq + total_sq

    def mean_var(self) -> tuple[Tensor, Tensor]:
        assert self.total is not None and self.total_sq is not None
        mean = self.total / self.count
        # biased variance, the one train-mode BN normalises with
        return mean, (self.total_sq / self.count - mean * mean).clamp_min(0.0)


def _reparametrise(bn: _BatchNorm, mean: Tensor, var: Tensor) -> None:
    """Set running stats to (mean, var) and adapt weight and bias so ``bn`` in eval mode computes the same
    ``scale * x + shift`` as before: weight = scale * sqrt(var + eps), bias = shift + scale * mean."""
    assert bn.running_mean is not None and bn.running_var is not None
    old_mean, old_var = bn.running_mean.double(), bn.running_var.double()
    weight = bn.weight.double() if bn.weight is not None else torch.ones_like(old_mean)
    bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(old_mean)
    scale = weight / torch.sqrt(old_var + bn.eps)
    shift = bias - old_mean * scale
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        if bn.weight is not None and bn.bias is not None:
            bn.weight.copy_(scale * torch.sqrt(var + bn.eps))
            bn.bias.copy_(shift + scale * mean)


def calibrate_batchnorm(model: nn.Module, batches: Iterable[Tensor]) -> None:
    """Re-estimate every BN layer's running mean and variance on ``batches`` (images as the model takes them,
    e.g. ~64 letterboxed training images) and re-parametrise weight and bias so eval-mode output is unchanged.

    Use it after importing BN-folded weights (official ONNX) and before fine-tuning with train-mode BN; with
    the identity BN of such an import it sets running_mean = mu, running_var = sigma^2,
    weight = sqrt(sigma^2 + eps), bias = b + mu. Ordinary checkpoints already have meaningful statistics and
    do not need it.

    One eval-mode pass suffices: each re-parametrisation keeps its layer's eval function, so every layer sees
    the same input before and after the others are changed. The model's train/eval mode is restored
    afterwards.
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    moments = [_ChannelMoments() for _ in layers]
    handles = [bn.register_forward_pre_hook(hook) for bn, hook in zip(layers, moments)]
    was_training = model.training
    images = 0
    try:
        model.eval()
        with torch.no_grad():
            for batch in batches:
                model(batch)
                images += int(batch.shape[0])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if images == 0:
        raise ValueError("calibrate_batchnorm: no images in the calibration batches")
    for bn, stats in zip(layers, moments):
        if stats.total is not None:  # a layer that never ran keeps its parameters
            _reparametrise(bn, *stats.mean_var())
    logger.info("calibrated %d BatchNorm layers on %d images", len(layers), images)
