"""SGD with Nesterov momentum and the three official parameter groups (reference §4.1).

Group 0: normalisation-layer weights, no decay. Group 1: every other weight, ``weight_decay``. Group 2: all
biases (normalisation and prediction biases), no decay. The lr of every group is set by the trainer each step.
"""

from __future__ import annotations

from torch import nn
from torch.optim import SGD

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """``(norm_weights, decayed_weights, biases)`` of ``model``, each parameter in exactly one group."""
    norm_weights: list[nn.Parameter] = []
    decayed: list[nn.Parameter] = []
    biases: list[nn.Parameter] = []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name == "bias":
                biases.append(param)
            elif isinstance(module, NORM_TYPES):
                norm_weights.append(param)
            else:
                decayed.append(param)
    return norm_weights, decayed, biases


def build_optimizer(model: nn.Module, *, lr: float, momentum: float, weight_decay: float) -> SGD:
    """The official optimizer; ``lr`` is the starting value (official: ``warmup_lr``, i.e. 0)."""
    norm_weights, decayed, biases = parameter_groups(model)
    return SGD(
        [
            {"params": norm_weights, "weight_decay": 0.0},
            {"params": decayed, "weight_decay": weight_decay},
            {"params": biases, "weight_decay": 0.0},
        ],
        lr=lr,
        momentum=momentum,
        nesterov=True,
    )


def set_lr(optimizer: SGD, lr: float) -> None:
    """Overwrite the lr of every group (official ``param_group["lr"] = lr`` for all groups)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
