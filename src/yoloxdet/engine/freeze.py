"""Freezing part of a model while fine-tuning (not official): no gradients there, BatchNorm statistics held.

Holding a pretrained backbone keeps the features it learned on a large dataset and skips its weight gradients,
so each step is cheaper; the usual move when the new dataset is small.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from torch import nn

from yoloxdet.config import ConfigError


def _hold_eval(module: nn.Module, _inputs: object) -> None:
    module.training = False  # normalise with the stored statistics and never update them


def named_module(modules: dict[str, nn.Module], path: str, option: str) -> nn.Module:
    """``modules[path]`` (``modules`` from ``model.named_modules()``), or a :class:`ConfigError` naming the
    config ``option`` and suggesting the closest path."""
    if path not in modules:
        close = difflib.get_close_matches(path, [name for name in modules if name], n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{option}: no module named {path!r} in the model.{hint}")
    return modules[path]


def freeze(model: nn.Module, prefixes: Sequence[str]) -> int:
    """Freeze every module whose dotted path is one of ``prefixes`` or lies below one (``backbone.backbone``
    is the CSPDarknet / Darknet of a YOLOX model). Returns the number of frozen parameter elements.

    Raises:
        ConfigError: a prefix names no module (the message suggests the closest path).
    """
    modules = dict(model.named_modules())
    frozen = 0
    for prefix in prefixes:
        held = named_module(modules, prefix, "train.freeze")
        for module in held.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.register_forward_pre_hook(_hold_eval)
        for param in held.parameters():
            if param.requires_grad:
                param.requires_grad_(False)
                frozen += param.numel()
    return frozen
