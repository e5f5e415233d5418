"""Schedule, EMA and optimizer groups against the peer's implementations (bit-identical to official)."""

from __future__ import annotations

import pytest
import torch

from yoloxdet.engine.ema import ModelEMA
from yoloxdet.engine.optim import parameter_groups
from yoloxdet.engine.schedule import LRSchedule, lr_at

from .peer import peer_model, randomize_

lr_scheduler = pytest.importorskip("yolox.utils.lr_scheduler")


@pytest.mark.parametrize(
    ("iters_per_epoch", "epochs", "warmup", "no_aug", "warmup_lr"),
    [(1849, 300, 5, 15, 0.0), (7, 20, 2, 3, 1e-4), (13, 5, 1, 1, 0.0)],
)
def test_lr_matches_peer(
    iters_per_epoch: int, epochs: int, warmup: int, no_aug: int, warmup_lr: float
) -> None:
    peer = lr_scheduler.LRScheduler(
        "yoloxwarmcos",
        0.01,
        iters_per_epoch,
        epochs,
        warmup_epochs=warmup,
        warmup_lr_start=warmup_lr,
        no_aug_epochs=no_aug,
        min_lr_ratio=0.05,
    )
    ours = LRSchedule(0.01, iters_per_epoch, epochs, warmup, no_aug, warmup_lr, 0.05)
    step = max(1, iters_per_epoch * epochs // 5000)
    for it in range(0, iters_per_epoch * epochs + 2, step):
        assert lr_at(it, ours) == peer.update_lr(it), it


def test_ema_matches_peer_bit_for_bit() -> None:
    ema_mod = pytest.importorskip("yolox.utils.ema")
    model = randomize_(peer_model("yolox-nano", num_classes=3))
    ours, theirs = ModelEMA(model), ema_mod.ModelEMA(model, 0.9998)
    gen = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.01)
        model.backbone(torch.rand(1, 3, 64, 64, generator=gen) * 255)  # moves the BN running stats
        ours.update(model)
        theirs.update(model)
    for (key, a), b in zip(ours.module.state_dict().items(), theirs.ema.state_dict().values()):
        assert torch.equal(a, b), key


def test_parameter_groups_match_peer() -> None:
    config = pytest.importorskip("yolox.config")
    cfg = config.YoloxConfig.get_named_config("yolox_nano")
    cfg.num_classes = 3
    cfg.model = peer_model("yolox-nano", num_classes=3)
    peer_opt = cfg.get_optimizer(64)
    ours = parameter_groups(cfg.model)
    for group, mine in zip(peer_opt.param_groups, ours):
        assert [id(p) for p in group["params"]] == [id(p) for p in mine]
