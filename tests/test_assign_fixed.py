"""Single-positive and centre-3×3 assigners: hand-computed cells, conflicts, edges, IoU and cost."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from yoloxdet.assign.fixed import center3x3_assign, level_by_size, single_assign
from yoloxdet.structures import HeadOutputs, Targets

# A 64x64 input: levels 8x8 (stride 8, anchors 0-63), 4x4 (stride 16, 64-79), 2x2 (stride 32, 80-83).
STRIDES = (8, 16, 32)
SIZES = ((8, 8), (4, 4), (2, 2))
NUM_ANCHORS = 84


def make_outputs(batch: int = 1, num_classes: int = 3, seed: int = 0) -> HeadOutputs:
    gen = torch.Generator().manual_seed(seed)
    return HeadOutputs(
        box_raw=torch.randn(batch, NUM_ANCHORS, 4, generator=gen) * 0.1,
        obj_logits=torch.randn(batch, NUM_ANCHORS, generator=gen),
        cls_logits=torch.randn(batch, NUM_ANCHORS, num_classes, generator=gen),
        strides=STRIDES,
        feature_sizes=SIZES,
    )


def targets_of(*boxes: tuple[float, float, float, float], labels: list[int] | None = None) -> Targets:
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    lab = torch.tensor(labels if labels is not None else [0] * len(b))
    return Targets.from_list([b], [lab])


def positives(assignment) -> dict[int, int]:
    idx = assignment.fg_mask[0].nonzero().flatten().tolist()
    return {a: int(assignment.matched_gt[0, a]) for a in idx}


def test_level_by_size_boundaries() -> None:
    sides = torch.tensor([[[0, 0, 10, 90], [0, 0, 91, 5], [0, 0, 181, 1], [0, 0, 182, 1], [0, 0, 1000, 1]]])
    assert level_by_size(sides.float(), STRIDES).tolist() == [[0, 1, 1, 2, 2]]


def test_single_positive_is_centre_cell_on_size_level() -> None:
    # GT1: max side 30 -> stride 8, centre (20, 12) -> cell (2, 1) -> anchor 1*8 + 2 = 10.
    # GT2: max side 120 -> stride 16, centre (40, 40) -> cell (2, 2) -> anchor 64 + 2*4 + 2 = 74.
    # GT3: max side 300 -> stride 32, centre (64, 10) on the right edge -> cell (1, 0) clamped -> anchor 81.
    result = single_assign(make_outputs(), targets_of((20, 12, 30, 20), (40, 40, 120, 60), (64, 10, 300, 20)))
    assert positives(result) == {10: 0, 74: 1, 81: 2}


def test_center3x3_cells_and_grid_edges() -> None:
    # Centre cell (2, 1) at stride 8 -> x 1..3, y 0..2; corner GT at cell (0, 0) keeps 4 cells.
    result = center3x3_assign(make_outputs(), targets_of((20, 12, 30, 20), (2, 3, 4, 4)))
    expected = {a: 0 for a in (1, 2, 3, 9, 10, 11, 17, 18, 19)}
    # Anchor 1 and 9 are also claimed by the tiny corner GT (area 16 < 600): the smaller GT wins.
    expected.update({0: 1, 1: 1, 8: 1, 9: 1})
    assert positives(result) == expected


def test_conflict_goes_to_smaller_gt_regardless_of_order() -> None:
    big, small = (20, 12, 40, 40), (20, 12, 10, 10)  # both stride 8, same centre cell
    for boxes, small_index in (((big, small), 1), ((small, big), 0)):
        result = single_assign(make_outputs(), targets_of(*boxes))
        assert positives(result) == {10: small_index}


def test_matched_iou_and_cost_of_positive() -> None:
    outputs = make_outputs(num_classes=3)
    # Make the prediction at anchor 10 (cell (2, 1), stride 8) equal the GT (20, 12, 30, 20): IoU 1.
    outputs.box_raw[0, 10] = torch.tensor([0.5, 0.5, math.log(30 / 8), math.log(20 / 8)])
    result = single_assign(outputs, targets_of((20, 12, 30, 20), labels=[2]))
    assert result.matched_iou[0, 10].item() == pytest.approx(1.0, abs=1e-6)
    p = (outputs.cls_logits[0, 10].sigmoid() * outputs.obj_logits[0, 10].sigmoid()).sqrt()
    expected_cost = F.binary_cross_entropy(p, torch.tensor([0.0, 0.0, 1.0]), reduction="sum") + 3 * -math.log(
        1 + 1e-8
    )
    assert result.cost[0, 10].item() == pytest.approx(expected_cost.item(), rel=1e-5)
    assert result.cost[0, ~result.fg_mask[0]].abs().sum() == 0
    assert result.matched_iou[0, ~result.fg_mask[0]].abs().sum() == 0


def test_padding_empty_images_and_empty_batch() -> None:
    outputs = make_outputs(batch=2)
    targets = Targets.from_list(
        [torch.tensor([[20.0, 12, 30, 20], [40, 40, 120, 60]]), torch.zeros(0, 4)],
        [torch.tensor([0, 1]), torch.zeros(0)],
    )
    result = center3x3_assign(outputs, targets)
    assert result.fg_mask[0].sum() == 18 and not result.fg_mask[1].any()
    assert (result.matched_gt[1] == -1).all()
    empty = single_assign(outputs, Targets.from_list([torch.zeros(0, 4)] * 2, [torch.zeros(0)] * 2))
    assert not empty.fg_mask.any() and (empty.matched_gt == -1).all()


@pytest.mark.parametrize("assigner", [single_assign, center3x3_assign])
def test_bf16_outputs_under_autocast_give_float32_costs(assigner) -> None:
    outputs = make_outputs()
    low = outputs._replace(
        **{f: getattr(outputs, f).bfloat16() for f in ("box_raw", "obj_logits", "cls_logits")}
    )
    targets = targets_of((20, 12, 30, 20), (40, 40, 120, 60))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = assigner(low, targets)
    reference = assigner(low, targets)
    assert under.cost.dtype == torch.float32 and torch.equal(under.cost, reference.cost)
    assert torch.equal(
        under.fg_mask, assigner(outputs, targets).fg_mask
    )  # fixed positives ignore predictions
