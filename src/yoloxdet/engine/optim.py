"""SGD with Nesterov momentum and the three official parameter groups (reference §4.1).

Group 0: normalisation-layer weights, no decay. Group 1: every other weight, ``weight_decay``. Group 2: all
biases (normalisation and prediction biases), no decay. The lr of every group is set by the trainer each step.

Layer-wise learning rates (``train.lr_scales``, not official): the parameters under a module path get the
scheduled lr times a factor, e.g. ``backbone.backbone=0.1`` to fine-tune a pretrained backbone gently while
the neck and head learn the new data at the full rate. Each factor gets its own copy of the three groups.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn
from torch.optim import SGD

from yoloxdet.engine.freeze import named_module

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
LR_SCALE_KEY = "lr_scale"  # the factor a param group applies to the scheduled lr


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


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    lr_scales: Mapping[str, float] | None = None,
) -> SGD:
    """The official optimizer; ``lr`` is the starting value (official: ``warmup_lr``, i.e. 0).

    ``lr_scales`` maps module paths to lr factors (:func:`yoloxdet.config.parse_lr_scales`; the deepest path
    containing a parameter wins); the full-rate groups come first, so ``param_groups[0]`` always carries the
    scheduled lr.

    Raises:
        ConfigError: a path of ``lr_scales`` names no module of ``model``.
    """
    scales = dict(lr_scales or {})
    modules = dict(model.named_modules())
    scale_of: dict[int, float] = {}
    for path in sorted(scales, key=lambda p: p.count(".")):  # deeper paths override shallower ones
        for param in named_module(modules, path, "train.lr_scales").parameters():
            scale_of[id(param)] = scales[path]
    official = parameter_groups(model)
    groups = []
    for scale in [1.0, *sorted(set(scale_of.values()) - {1.0})]:
        for params, decay in zip(official, (0.0, weight_decay, 0.0)):
            kept = [p for p in params if scale_of.get(id(p), 1.0) == scale]
            groups.append({"params": kept, "weight_decay": decay, LR_SCALE_KEY: scale})
    return SGD(groups, lr=lr, momentum=momentum, nesterov=True)


def set_lr(optimizer: SGD, lr: float) -> None:
    """Set every group's lr to ``lr`` times its layer-wise factor (official: ``param_group["lr"] = lr`` for
    all groups)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get(LR_SCALE_KEY, 1.0)
