"""Exponential moving average of the weights, as official ``ModelEMA`` (reference §4.3).

``d = 0.9998 · (1 − exp(−updates / 2000))``; every floating-point state_dict entry (parameters *and* BN
running statistics) becomes ``d·ema + (1−d)·model`` after each optimizer step. Integer buffers
(``num_batches_tracked``) are left untouched, as official. Evaluation and checkpoints use the EMA copy. The
ramp (2000 updates) is settable: with 2000, d is still about 0.26 after 600 updates, so a short run's
"average" is nearly its last weights.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

EMA_DECAY = 0.9998
EMA_RAMP = 2000.0


def ema_decay(updates: int, decay: float = EMA_DECAY, ramp: float = EMA_RAMP) -> float:
    """The decay used by update number ``updates`` (1-based); small early so the average forgets the init."""
    return decay * (1.0 - math.exp(-updates / ramp))


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel / DistributedDataParallel wrappers."""
    return model.module if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel) else model


class ModelEMA:
    """An eval-mode, gradient-free copy of ``model`` tracking its moving average."""

    def __init__(
        self, model: nn.Module, decay: float = EMA_DECAY, updates: int = 0, ramp: float = EMA_RAMP
    ) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval()
        self.decay = decay
        self.updates = updates
        self.ramp = ramp
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = ema_decay(self.updates, self.decay, self.ramp)
        current = unwrap(model).state_dict()
        averaged = [(v, current[k]) for k, v in self.module.state_dict().items() if v.dtype.is_floating_point]
        # the official v = d * v + (1 - d) * p, rounded as official (a lerp is not bit-identical to it);
        # foreach: a few kernels for the whole model, not one per tensor
        ema = [e for e, _ in averaged]
        torch._foreach_mul_(ema, d)
        torch._foreach_add_(ema, torch._foreach_mul([m.detach() for _, m in averaged], 1.0 - d))

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.decay = float(state.get("decay", self.decay))
