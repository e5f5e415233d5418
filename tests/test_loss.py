"""The YOLOX loss on hand-computed cases (reference §3.4)."""

from __future__ import annotations

import math

import pytest
import torch

from yoloxdet.loss import iou_loss, l1_target, normaliser, yolox_loss
from yoloxdet.ops.decode import anchor_points, decode_boxes
from yoloxdet.structures import Assignment, HeadOutputs, Targets


def two_anchor_case(use_positive: bool = True):
    """Two anchors at stride 8 (grid x 0 and 1); anchor 1 predicts exactly the GT box (12, 4, 8, 8), class 1
    of 3."""
    box_raw = torch.tensor([[[0.3, 0.2, 0.1, -0.2], [0.5, 0.5, 0.0, 0.0]]], requires_grad=True)
    obj = torch.tensor([[-1.0, 2.0]], requires_grad=True)
    cls = torch.tensor([[[0.0, 0.0, 0.0], [-1.0, 1.5, 0.5]]], requires_grad=True)
    outputs = HeadOutputs(box_raw, obj, cls, (8,), ((1, 2),))
    targets = Targets.from_list([torch.tensor([[12.0, 4.0, 8.0, 8.0]])], [torch.tensor([1])])
    fg = torch.tensor([[False, use_positive]])
    assignment = Assignment(
        fg_mask=fg,
        matched_gt=torch.where(fg, 0, -1),
        matched_iou=torch.where(
            fg, 0.9, 0.0
        ),  # as if the assigner measured 0.9: the class target uses it as is
    )
    return outputs, targets, assignment


def as_floats(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {key: float(value.detach()) for key, value in losses.items()}


def bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_terms_by_hand_with_one_positive():
    outputs, targets, assignment = two_anchor_case()
    losses = as_floats(yolox_loss(outputs, targets, assignment, use_l1=True))
    assert float(losses["iou"]) == pytest.approx(0.0, abs=1e-6)  # prediction == GT
    assert float(losses["obj"]) == pytest.approx(bce(-1.0, 0) + bce(2.0, 1), rel=1e-6)
    expected_cls = bce(-1.0, 0) + bce(1.5, 0.9) + bce(0.5, 0)
    assert float(losses["cls"]) == pytest.approx(expected_cls, rel=1e-6)
    # raw (0.5, 0.5, 0, 0) at grid (1, 0) vs target (12/8 - 1, 4/8 - 0, log(1 + 1e-8), log(1 + 1e-8))
    assert float(losses["l1"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["total"]) == pytest.approx(losses["obj"] + losses["cls"], rel=1e-6)
    assert int(losses["num_fg"]) == 1 and float(losses["fg_per_gt"]) == 1.0


def test_iou_term_is_five_times_one_minus_iou_squared():
    outputs, targets, assignment = two_anchor_case()
    shifted = outputs._replace(
        box_raw=outputs.box_raw.detach() + torch.tensor([0.25, 0.0, 0.0, 0.0])
    )  # 2 px right
    losses = as_floats(yolox_loss(shifted, targets, assignment, use_l1=False))
    iou = (6 * 8) / (2 * 64 - 6 * 8)  # 6 px overlap of two 8 x 8 boxes
    assert float(losses["iou"]) == pytest.approx(5 * (1 - iou**2), rel=1e-6)
    assert float(losses["l1"]) == 0.0


def test_iou_loss_pairs():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [10.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    torch.testing.assert_close(iou_loss(pred, target), torch.tensor([1 - (2 / 6) ** 2, 0.0, 1.0]))


def test_without_positives_objectness_is_normalised_by_one():
    outputs, targets, assignment = two_anchor_case(use_positive=False)
    raw_losses = yolox_loss(outputs, targets, assignment, use_l1=True)
    raw_losses["total"].backward()
    assert outputs.obj_logits.grad is not None
    losses = as_floats(raw_losses)
    assert float(losses["obj"]) == pytest.approx(bce(-1.0, 0) + bce(2.0, 0), rel=1e-6)
    assert float(losses["iou"]) == float(losses["cls"]) == float(losses["l1"]) == 0.0
    assert (
        int(losses["num_fg"]) == 0 and float(losses["fg_per_gt"]) == 1.0
    )  # official clamps positives to >= 1


def test_gradients_reach_every_output():
    outputs, targets, assignment = two_anchor_case()
    shifted = outputs._replace(box_raw=(outputs.box_raw + 0.1))
    yolox_loss(shifted, targets, assignment, use_l1=True)["total"].backward()
    for tensor in (outputs.box_raw, outputs.obj_logits, outputs.cls_logits):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_l1_target_decodes_back_to_the_box():
    grid_xy, stride = anchor_points(((2, 3), (1, 2)), (8, 16))
    gt = torch.tensor([[30.0, 12.0, 17.0, 9.0]]).expand(len(stride), 4)
    raw = l1_target(gt, grid_xy, stride)
    decoded = decode_boxes(
        HeadOutputs(raw[None], torch.zeros(1, 8), torch.zeros(1, 8, 1), (8, 16), ((2, 3), (1, 2)))
    )
    torch.testing.assert_close(decoded[0], gt, rtol=1e-5, atol=1e-4)


def test_normaliser_choices():
    count = torch.tensor(0)
    assert float(normaliser(count)) == 1.0
    assert float(normaliser(torch.tensor(7), "mean")) == 7.0  # no process group: the local count
    with pytest.raises(ValueError, match="num_fg_reduction"):
        normaliser(count, "sum")


def test_low_precision_outputs_give_float32_terms():
    outputs, targets, assignment = two_anchor_case()
    half = outputs._replace(
        box_raw=outputs.box_raw.detach().bfloat16(),
        obj_logits=outputs.obj_logits.detach().bfloat16(),
        cls_logits=outputs.cls_logits.detach().bfloat16(),
    )
    upcast = half._replace(
        box_raw=half.box_raw.float(), obj_logits=half.obj_logits.float(), cls_logits=half.cls_logits.float()
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = yolox_loss(half, targets, assignment, use_l1=True)
    full = yolox_loss(upcast, targets, assignment, use_l1=True)
    for key in ("total", "iou", "obj", "cls", "l1"):
        assert low[key].dtype == torch.float32 and torch.equal(low[key], full[key]), key
