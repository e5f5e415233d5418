"""The yoloxwarmcos schedule and phases against the reference values (reference §4.2, §4.4)."""

from __future__ import annotations

import itertools

import pytest
import torch

from yoloxdet.config import ConfigError, TrainConfig, parse_lr_scales
from yoloxdet.engine.optim import build_optimizer, parameter_groups, set_lr
from yoloxdet.engine.schedule import LRSchedule, Phase, base_lr, eval_due, lr_at, phase_at, progress_iters
from yoloxdet.models.zoo import create_model

OFFICIAL = LRSchedule(base_lr=0.01, iters_per_epoch=1849, epochs=300)


@pytest.mark.parametrize(
    ("iteration", "expected"), [(4622, 0.0025), (9245, 0.01), (526964, 0.0005), (554700, 0.0005)]
)
def test_reference_values(iteration: int, expected: float) -> None:
    assert lr_at(iteration, OFFICIAL) == pytest.approx(expected, rel=1e-3)


def test_warmup_is_quadratic_and_cosine_monotone() -> None:
    w = OFFICIAL.warmup_iters
    assert lr_at(0, OFFICIAL) == 0.0
    assert lr_at(w / 2, OFFICIAL) == pytest.approx(0.01 / 4)
    values = [lr_at(it, OFFICIAL) for it in range(int(w) + 1, OFFICIAL.total_iters, 997)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(0.0005)
    # midpoint of the cosine part sits half way between base and floor
    mid = w + (OFFICIAL.total_iters - w - OFFICIAL.no_aug_iters) / 2
    assert lr_at(mid, OFFICIAL) == pytest.approx((0.01 + 0.0005) / 2)


def test_no_warmup_does_not_divide_by_zero() -> None:
    s = LRSchedule(base_lr=0.02, iters_per_epoch=10, epochs=10, warmup_epochs=0, no_aug_epochs=0)
    assert lr_at(0, s) == pytest.approx(0.02)
    assert lr_at(100, s) == pytest.approx(0.001)


def test_base_lr_scales_with_global_batch() -> None:
    assert base_lr(0.01 / 64, 64) == pytest.approx(0.01)
    assert base_lr(0.01 / 64, 8) == pytest.approx(0.00125)


def test_phase_switch_off_by_one() -> None:
    phases = [phase_at(e, 300, 15) for e in range(300)]
    assert phases[283] == Phase(mosaic=True, l1=False)
    assert phases[284] == Phase(mosaic=False, l1=True)  # the 285th epoch: 16 no-aug epochs
    assert sum(not p.mosaic for p in phases) == 16
    # while the lr floor covers only the last 15 epochs
    assert lr_at(284 * 1849 + 1, OFFICIAL) > 0.0005
    assert lr_at(285 * 1849, OFFICIAL) == pytest.approx(0.0005)


def test_eval_due() -> None:
    aug, no_aug = Phase(True, False), Phase(False, True)
    assert [e for e in range(30) if eval_due(e, 30, 10, aug)] == [9, 19, 29]
    assert eval_due(3, 30, 10, no_aug)
    assert not eval_due(3, 30, 0, aug) and eval_due(29, 30, 0, aug)


def test_budget_progress_takes_the_later_position() -> None:
    flat = LRSchedule(
        base_lr=0.01, iters_per_epoch=10, epochs=100, warmup_epochs=0, no_aug_epochs=0
    )  # 1000 steps
    assert progress_iters(50, flat) == 50.0
    assert progress_iters(50, flat, elapsed_s=30, budget_s=60) == 500.0
    assert progress_iters(800, flat, elapsed_s=30, budget_s=60) == 800.0
    assert progress_iters(10, flat, elapsed_s=120, budget_s=60) == 1000.0


def test_budget_keeps_the_warmup_in_steps() -> None:
    # the demo's shape: 9 steps an epoch, 300 epochs as an upper bound, 1 warm-up epoch, a 10-minute budget
    demo = LRSchedule(base_lr=0.00125, iters_per_epoch=9, epochs=300, warmup_epochs=1, no_aug_epochs=0)
    w, total = demo.warmup_iters, demo.total_iters
    # 5 s in (2 steps at 2.5 s a step): still warming up, not pushed past the warm-up by the clock
    position = progress_iters(2, demo, elapsed_s=5, budget_s=600)
    assert position == 2.0 and lr_at(position, demo) == pytest.approx(0.00125 * (2 / 9) ** 2)
    # after the warm-up the clock lays the cosine over the rest: half the budget is half of the post-warm-up
    # span
    assert progress_iters(20, demo, elapsed_s=300, budget_s=600) == pytest.approx(w + (total - w) / 2)
    assert progress_iters(9, demo, elapsed_s=0, budget_s=600) == 9.0  # continuous at the seam
    assert progress_iters(30, demo, elapsed_s=900, budget_s=600) == total  # spent
    assert progress_iters(3, demo, elapsed_s=601, budget_s=600) == total  # spent during warm-up


def test_parameter_groups_partition_the_model() -> None:
    model = create_model("yolox-nano", num_classes=3)
    norm, decayed, biases = parameter_groups(model)
    ids = [id(p) for p in norm + decayed + biases]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {id(m.weight) for m in bn} == {id(p) for p in norm}
    assert all(p.dim() == 1 for p in biases) and all(p.dim() == 4 for p in decayed)
    opt = build_optimizer(model, lr=0.0, momentum=0.9, weight_decay=5e-4)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 5e-4, 0.0]
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)
    set_lr(opt, 0.123)
    assert all(g["lr"] == 0.123 for g in opt.param_groups)


def test_layer_wise_lr_scales_the_named_modules_only() -> None:
    model = create_model("yolox-nano", num_classes=3)
    scales = parse_lr_scales(["backbone.backbone=0.1", "backbone.backbone.stem=0"])
    opt = build_optimizer(model, lr=0.0, momentum=0.9, weight_decay=5e-4, lr_scales=scales)
    set_lr(opt, 0.02)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(lr_of) == len(list(model.parameters()))  # each parameter in exactly one group
    assert opt.param_groups[0]["lr"] == 0.02  # the first group carries the scheduled lr (logged)
    for name, param in model.named_parameters():
        if name.startswith("backbone.backbone.stem."):  # the deeper path wins
            assert lr_of[id(param)] == 0.0, name
        elif name.startswith("backbone.backbone."):
            assert lr_of[id(param)] == pytest.approx(0.002), name
        else:
            assert lr_of[id(param)] == 0.02, name
    decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    plain = build_optimizer(model, lr=0.0, momentum=0.9, weight_decay=5e-4)
    assert decay_of == {id(p): g["weight_decay"] for g in plain.param_groups for p in g["params"]}


@pytest.mark.parametrize("entry", ["backbone", "backbone=x", "=0.1", "backbone=-1"])
def test_malformed_lr_scales_fail_when_the_config_is_built(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.lr_scales"):
        TrainConfig(lr_scales=(entry,))


def test_lr_scales_naming_no_module_suggest_the_closest() -> None:
    model = create_model("yolox-nano", num_classes=3)
    with pytest.raises(ConfigError, match=r"Did you mean 'backbone\.backbone'"):
        build_optimizer(model, lr=0.0, momentum=0.9, weight_decay=0.0, lr_scales={"backbone.backbon": 0.1})
