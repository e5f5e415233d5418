"""EMA: the official ramp, BN buffers averaged, integer buffers untouched (reference §4.3)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from yoloxdet.engine.ema import ModelEMA, ema_decay


def test_decay_ramp_values() -> None:
    assert ema_decay(0) == 0.0
    assert ema_decay(2000) == pytest.approx(0.9998 * (1 - math.exp(-1)))
    assert ema_decay(10**6) == pytest.approx(0.9998)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.SiLU())


@pytest.mark.parametrize("ramp", [2000.0, 5.0])  # official, and a short-run ramp
def test_update_averages_params_and_bn_buffers_not_ints(ramp: float) -> None:
    model = _net()
    ema = ModelEMA(model, ramp=ramp)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    model.train()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.randn(2, 3, 8, 8))  # moves BN running stats and num_batches_tracked
    current = model.state_dict()
    for _ in range(3):
        ema.update(model)
    expected_keep = math.prod(ema_decay(n, ramp=ramp) for n in (1, 2, 3))
    for key, value in ema.module.state_dict().items():
        if value.dtype.is_floating_point:
            want = expected_keep * start[key] + (1 - expected_keep) * current[key]
            torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(value, start[key]), key  # integer buffers are not averaged
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_state_dict_round_trip() -> None:
    model = _net()
    ema = ModelEMA(model)
    ema.update(model)
    other = ModelEMA(_net())
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    for a, b in zip(ema.module.state_dict().values(), other.module.state_dict().values()):
        assert torch.equal(a, b)
