"""``train.freeze``: frozen modules keep their weights and BatchNorm statistics through training steps."""

from __future__ import annotations

import re

import pytest
import torch

from yoloxdet.config import ConfigError
from yoloxdet.engine.freeze import freeze
from yoloxdet.engine.optim import build_optimizer
from yoloxdet.engine.schedule import Phase
from yoloxdet.engine.trainer import yolox_loss_fn
from yoloxdet.models.zoo import create_model
from yoloxdet.structures import Targets


def test_frozen_backbone_keeps_weights_and_bn_statistics_while_the_rest_trains():
    torch.manual_seed(0)
    model = create_model("yolox-nano", num_classes=2).train()
    frozen = freeze(model, ["backbone.backbone"])
    assert frozen == sum(p.numel() for p in model.backbone.backbone.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=5e-4)
    images = torch.rand(2, 3, 128, 128) * 255
    targets = Targets(
        torch.tensor([[[40.0, 40, 30, 20]], [[80, 60, 20, 40]]]),
        torch.tensor([[0], [1]]),
        torch.ones(2, 1, dtype=torch.bool),
    )
    for _ in range(2):
        optimizer.zero_grad()
        yolox_loss_fn()(model, images, targets, Phase(mosaic=True, l1=False))["total"].backward()
        optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith("backbone.backbone.") for k in changed)  # weights and running statistics
    assert any(k.startswith("head.") for k in changed) and any(
        k.startswith("backbone.C3_p3.") for k in changed
    )
    assert model.training and model.backbone.backbone.stem.conv.bn.training is False  # held by the hook


def test_freeze_names_the_closest_module_for_a_typo():
    model = create_model("yolox-nano", num_classes=2)
    with pytest.raises(ConfigError, match=re.escape("Did you mean 'backbone.backbone'")):
        freeze(model, ["backbone.backbon"])
