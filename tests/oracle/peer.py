"""Access to the peer oracle, pixeltable-yolox 0.4.3 (bit-identical to official YOLOX numerics, reference §8).

It installs a top-level package ``yolox``; tests import it only through this module.
"""

from __future__ import annotations

import pytest
import torch


def peer_model(name: str, num_classes: int = 80) -> torch.nn.Module:
    """A randomly initialised official-architecture model from the peer (train mode, official init)."""
    config_mod = pytest.importorskip("yolox.config", reason="pixeltable-yolox (test extra) not installed")
    cfg = config_mod.YoloxConfig.get_named_config(name.replace("-", "_"))
    cfg.num_classes = num_classes
    return cfg.get_model()


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN buffer non-trivial values so outputs exercise all weights
    (the prior bias init alone makes every score 1e-4, which hides class and NMS bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith("bn.weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            else:
                fan_in = max(tensor[0].numel(), 1)
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / fan_in**0.5)
    return model
