"""SimOTA on hand-computed tiny cases (2-6 anchors) and its batching invariants."""

from __future__ import annotations

import math

import pytest
import torch

from yoloxdet.assign import assign, available, register
from yoloxdet.assign.simota import CURRENT, candidate_capacity, geometric_prior, pack_candidates
from yoloxdet.structures import HeadOutputs, Targets

STRIDE = 8


def outputs_for(
    pred_cxcywh: list[list[float]], cls_logits: list[list[float]], obj_logits: list[float]
) -> HeadOutputs:
    """One image, one row of ``len(pred)`` anchors at stride 8, whose raw outputs decode to
    ``pred_cxcywh``."""
    pred = torch.tensor(pred_cxcywh)
    grid_x = torch.arange(len(pred_cxcywh), dtype=torch.float32)
    raw = torch.stack(
        [
            pred[:, 0] / STRIDE - grid_x,
            pred[:, 1] / STRIDE,
            (pred[:, 2] / STRIDE).log(),
            (pred[:, 3] / STRIDE).log(),
        ],
        dim=1,
    )
    return HeadOutputs(
        raw[None], torch.tensor([obj_logits]), torch.tensor([cls_logits]), (STRIDE,), ((1, len(pred_cxcywh)),)
    )


def targets_for(boxes: list[list[float]], labels: list[int]) -> Targets:
    return Targets.from_list([torch.tensor(boxes).reshape(-1, 4)], [torch.tensor(labels, dtype=torch.long)])


def hand_cost(cls_probs: list[float], label: int, obj_prob: float, iou: float) -> float:
    """Σ_c BCE(sqrt(p_c · p_obj), onehot) + 3 · -log(iou + 1e-8), written out."""
    total = 0.0
    for c, p in enumerate(cls_probs):
        q = math.sqrt(p * obj_prob)
        total += -math.log(q) if c == label else -math.log(1 - q)
    return total - 3.0 * math.log(iou + 1e-8)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_dynamic_k_and_class_cost_pick_the_positives():
    # Anchor centres x = 4, 12, 20 all lie in the GT's centre square (0, 24).
    # IoUs 0.5, 1, 0.75 -> k = int(2.25) = 2.
    # Anchor 2 has the better IoU than anchor 0 but a poor class score, so anchors 1 and 0 are the two
    # cheapest.
    outputs = outputs_for(
        [[12, 4, 8, 4], [12, 4, 8, 8], [12, 4, 8, 6]], [[0.0], [0.0], [-6.0]], [0.0, 0.0, 0.0]
    )
    targets = targets_for([[12, 4, 8, 8]], [0])
    result = assign("simota", outputs, targets)
    assert result.fg_mask.tolist() == [[True, True, False]]
    assert result.matched_gt.tolist() == [[0, 0, -1]]
    torch.testing.assert_close(result.matched_iou, torch.tensor([[0.5, 1.0, 0.0]]))
    expected = [hand_cost([sigmoid(0.0)], 0, 0.5, 0.5), hand_cost([sigmoid(0.0)], 0, 0.5, 1.0)]
    torch.testing.assert_close(result.cost[0, :2], torch.tensor(expected), atol=1e-4, rtol=0)
    assert hand_cost([sigmoid(-6.0)], 0, 0.5, 0.75) > expected[0]  # why anchor 2 lost


@pytest.mark.parametrize(("labels", "winner"), [([0, 1], 0), ([1, 0], 1)])
def test_conflict_goes_to_the_cheaper_gt_and_the_loser_gets_nothing(labels, winner):
    # Both GTs reach IoU 1/3 only with anchor 1 (k = 1 each) and both pick it; the class logits at anchor 1
    # favour class 0, so the GT labelled 0 keeps it and the other GT is left without a positive.
    outputs = outputs_for(
        [[4, 4, 8, 8], [16, 4, 8, 8], [28, 4, 8, 8]], [[0, 0], [2.0, -2.0], [0, 0]], [0, 0, 0]
    )
    targets = targets_for([[12, 4, 8, 8], [20, 4, 8, 8]], labels)
    result = assign("simota", outputs, targets)
    assert result.matched_gt.tolist() == [[-1, winner, -1]]
    torch.testing.assert_close(result.matched_iou[0, 1], torch.tensor(1 / 3))
    costs = [hand_cost([sigmoid(2.0), sigmoid(-2.0)], label, 0.5, 1 / 3) for label in labels]
    torch.testing.assert_close(result.cost[0, 1], torch.tensor(min(costs)), atol=1e-4, rtol=0)


def test_current_and_2021_variants_differ_as_documented():
    # GT x-range (-16, 40). Anchor centres x = 4, 12, 20, 28, 36, 44.
    # current: centre square (0, 24) -> candidates 0, 1, 2; IoU 0.6 each -> k = int(1.8) = 1
    #       -> the best class score.
    # 2021: in-box (anchors 0-4) ∪ centre radius 2.5 (-8, 32) (anchors 0-3); anchor 4 (IoU 1) pays the 1e5
    #       penalty; k = int(4 * 0.6 + 1) = 3 -> the three best class scores among anchors 0-3.
    boxes = [[12, 4, 56, 4.8]] * 4 + [[12, 4, 56, 8], [44, 4, 1, 1]]
    outputs = outputs_for(boxes, [[1.0], [2.0], [0.0], [-1.0], [5.0], [5.0]], [0.0] * 6)
    targets = targets_for([[12, 4, 56, 8]], [0])
    current = assign("simota", outputs, targets)
    paper = assign("simota-2021", outputs, targets)
    assert current.fg_mask.tolist() == [[False, True, False, False, False, False]]
    assert paper.fg_mask.tolist() == [[True, True, True, False, False, False]]
    torch.testing.assert_close(paper.matched_iou[0, :3], torch.full((3,), 0.6))


def test_2021_penalised_pairs_fill_k_when_the_prior_has_too_few():
    # Small GT (x 10..14): in-box only anchor 1; centre (-8, 32) anchors 0-3; so box ∧ centre = {1}.
    # Predicted boxes all cover the GT fully with IoU 0.8 -> k = int(4 * 0.8) = 3: anchor 1 plus two penalised
    # ones.
    boxes = [[12, 4, 5, 4]] * 4
    outputs = outputs_for(boxes, [[0.0], [-3.0], [1.0], [2.0]], [0.0] * 4)
    result = assign("simota-2021", outputs, targets_for([[12, 4, 4, 4]], [0]))
    assert result.fg_mask.tolist() == [[False, True, True, True]]
    assert result.cost[0, 2] > 1e5 and result.cost[0, 1] < 1e5


def test_images_without_gt_or_without_candidates_get_no_positive():
    outputs = outputs_for([[12, 4, 8, 8]] * 3, [[0.0]] * 3, [0.0] * 3)
    batch2 = outputs._replace(
        box_raw=outputs.box_raw.repeat(2, 1, 1),
        obj_logits=outputs.obj_logits.repeat(2, 1),
        cls_logits=outputs.cls_logits.repeat(2, 1, 1),
    )
    no_gt_at_all = Targets(
        torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.bool)
    )
    for name in ("simota", "simota-2021"):
        assert not assign(name, batch2, no_gt_at_all).fg_mask.any()
        # image 0: GT far outside the image (no candidate anywhere); image 1: a normal GT
        mixed = Targets.from_list(
            [torch.tensor([[-300.0, -300.0, 10.0, 10.0]]), torch.tensor([[12.0, 4.0, 8.0, 8.0]])],
            [torch.tensor([0]), torch.tensor([0])],
        )
        result = assign(name, batch2, mixed)
        assert not result.fg_mask[0].any() and (result.matched_gt[0] == -1).all()
        assert result.fg_mask[1].any()


def random_outputs(seed: int, batch: int, num_gt: int, size: int = 128, num_classes: int = 5):
    gen = torch.Generator().manual_seed(seed)
    strides = (8, 16, 32)
    sizes = tuple((size // s, size // s) for s in strides)
    anchors = sum(h * w for h, w in sizes)
    outputs = HeadOutputs(
        torch.randn(batch, anchors, 4, generator=gen),
        torch.randn(batch, anchors, generator=gen),
        torch.randn(batch, anchors, num_classes, generator=gen),
        strides,
        sizes,
    )
    boxes = torch.cat(
        [torch.rand(batch, num_gt, 2, generator=gen) * size, torch.rand(batch, num_gt, 2) * 40 + 2], -1
    )
    labels = torch.randint(0, num_classes, (batch, num_gt), generator=gen)
    mask = torch.rand(batch, num_gt, generator=gen) < 0.8
    return outputs, Targets(boxes, labels, mask)


@pytest.mark.parametrize("name", ["simota", "simota-2021"])
def test_chunking_over_the_batch_changes_nothing(name):
    outputs, targets = random_outputs(0, 5, 12)
    whole = assign(name, outputs, targets)
    chunked = assign(name, outputs, targets, max_elements=1)  # one image per chunk
    assert whole.fg_mask.any()
    for field in ("fg_mask", "matched_gt", "matched_iou", "cost"):
        assert torch.equal(getattr(whole, field), getattr(chunked, field))


def test_low_precision_outputs_are_assigned_in_float32():
    outputs, targets = random_outputs(1, 2, 6)
    half = outputs._replace(
        box_raw=outputs.box_raw.bfloat16(),
        obj_logits=outputs.obj_logits.bfloat16(),
        cls_logits=outputs.cls_logits.bfloat16(),
    )
    upcast = half._replace(
        box_raw=half.box_raw.float(), obj_logits=half.obj_logits.float(), cls_logits=half.cls_logits.float()
    )
    low, full = assign("simota", half, targets), assign("simota", upcast, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = assign("simota", half, targets)
    assert torch.equal(under_autocast.cost, full.cost)
    assert low.matched_iou.dtype == torch.float32 and low.cost.dtype == torch.float32
    assert torch.equal(low.matched_gt, full.matched_gt) and torch.equal(low.cost, full.cost)


def test_no_gradient_flows_through_assignment():
    outputs, targets = random_outputs(2, 2, 4)
    outputs = outputs._replace(
        box_raw=outputs.box_raw.requires_grad_(), cls_logits=outputs.cls_logits.requires_grad_()
    )
    result = assign("simota", outputs, targets)
    assert not result.matched_iou.requires_grad and not result.cost.requires_grad


def test_candidate_capacity_bounds_the_densest_case():
    # 40 tiny GTs on top of each other: every one has its full 3 x 3 square on every level.
    outputs, _ = random_outputs(3, 1, 1, size=256)
    boxes = torch.tensor([[100.0 + 0.3 * i, 77.0, 2.0, 2.0] for i in range(40)])[None]
    candidate, _ = geometric_prior(boxes, torch.ones(1, 40, dtype=torch.bool), outputs, CURRENT)
    single, _ = geometric_prior(boxes[:, :1], torch.ones(1, 1, dtype=torch.bool), outputs, CURRENT)
    assert int(single.sum()) == candidate_capacity(outputs, 1, CURRENT) == 27
    assert int(candidate.sum()) <= candidate_capacity(outputs, 40, CURRENT)


def test_pack_candidates_keeps_anchor_order_and_pads():
    candidate = torch.tensor([[False, True, False, True, True], [False, False, False, False, False]])
    index, valid = pack_candidates(candidate, 4)
    assert index.tolist() == [[1, 3, 4, 0], [0, 0, 0, 0]]
    assert valid.tolist() == [[True, True, True, False], [False, False, False, False]]


def test_registry_rejects_unknown_and_duplicate_names():
    assert {"simota", "simota-2021"} <= set(available())
    outputs, targets = random_outputs(0, 1, 1)
    with pytest.raises(ValueError, match=r"unknown assigner 'nope'.*simota"):
        assign("nope", outputs, targets)
    with pytest.raises(ValueError, match="already registered"):
        register("simota", lambda outputs, targets: None)
