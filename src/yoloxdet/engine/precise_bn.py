"""Precise BN: re-estimate BatchNorm running statistics of a model on training batches before evaluation.

Not part of the official recipe (off by default, ``train.precise_bn=0``). Why it exists: BN running statistics
are an exponential average (momentum 0.03, ~33 steps) of batch statistics taken while the weights move, so
early in training, or in short runs, eval-mode outputs can be far from train-mode ones even when the model has
learned. Recomputing the statistics with the current weights removes that lag (Wu & Johnson, "Rethinking
'Batch' in BatchNorm", 2021).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Replace every BN layer's running mean/variance by the plain average over ``batches`` (train-mode
    forward, no gradient, parameters untouched); returns the number of images used. The model's mode is
    restored."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches
    images = 0
    try:
        model.train()
        for batch in batches:
            model(batch)
            images += int(batch.shape[0])
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return images
