"""Batched SimOTA against the peer's per-image ``get_assignments`` (official HEAD numerics, reference §3.2,
§8)."""

from __future__ import annotations

import warnings

import pytest
import torch

from yoloxdet.assign import assign
from yoloxdet.ops.decode import anchor_points, decode_boxes
from yoloxdet.structures import HeadOutputs, Targets

from .peer import peer_model

STRIDES = (8, 16, 32)


def random_batch(
    seed: int, gts_per_image: list[int], size: tuple[int, int] = (320, 320), num_classes: int = 80
) -> tuple[HeadOutputs, Targets]:
    """Random logits and boxes: boxes from 2 px to ~250 px, centres anywhere in the image."""
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    feature_sizes = tuple((height // s, width // s) for s in STRIDES)
    num_anchors = sum(h * w for h, w in feature_sizes)
    batch = len(gts_per_image)
    box_raw = torch.randn(batch, num_anchors, 4, generator=gen) * 0.7
    box_raw[..., 2:] += 1.0
    obj_logits = torch.randn(batch, num_anchors, generator=gen) * 2 - 1
    cls_logits = torch.randn(batch, num_anchors, num_classes, generator=gen) * 2 - 2
    boxes, labels = [], []
    for count in gts_per_image:
        wh = torch.exp(torch.rand(count, 2, generator=gen) * 5.5) + 1
        centres = torch.rand(count, 2, generator=gen) * torch.tensor([width, height])
        boxes.append(torch.cat([centres, wh], dim=1))
        labels.append(torch.randint(0, num_classes, (count,), generator=gen))
    outputs = HeadOutputs(box_raw, obj_logits, cls_logits, STRIDES, feature_sizes)
    return outputs, Targets.from_list(boxes, labels)


def peer_shifts(outputs: HeadOutputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The peer's x_shifts, y_shifts, expanded_strides ([1, A] each) for these outputs."""
    grid_xy, stride = anchor_points(outputs.feature_sizes, outputs.strides)
    return grid_xy[None, :, 0], grid_xy[None, :, 1], stride[None]


def peer_assignments(head: torch.nn.Module, outputs: HeadOutputs, targets: Targets) -> list[tuple | None]:
    """The peer's get_assignments per image (None for an image without ground truth, as its loss skips
    them)."""
    x_shifts, y_shifts, strides = peer_shifts(outputs)
    pred = decode_boxes(outputs)
    results = []
    for b in range(pred.shape[0]):
        n = int(targets.mask[b].sum())
        if n == 0:
            results.append(None)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            results.append(
                head.get_assignments(
                    b, n, targets.boxes_cxcywh[b, :n], targets.labels[b, :n].float(), pred[b], strides,
                    x_shifts, y_shifts, outputs.cls_logits, outputs.obj_logits[..., None],
                )
            )  # fmt: skip
    return results


@pytest.fixture(scope="module")
def peer_head() -> torch.nn.Module:
    return peer_model("yolox-s").head


def test_geometry_inputs_match_a_peer_training_forward():
    """Our anchor grid equals the x/y shifts and strides the peer passes to get_assignments in training."""
    peer = peer_model("yolox-nano")
    captured = {}

    def capture(*args, **kwargs):
        captured["shifts"] = (args[6], args[7], args[5])  # x_shifts, y_shifts, expanded_strides
        raise StopIteration

    peer.head.get_assignments = capture
    labels = torch.tensor([[[3.0, 100.0, 90.0, 40.0, 30.0]]])
    with pytest.raises(StopIteration):
        peer(torch.zeros(1, 3, 160, 224), labels)
    sizes = tuple((160 // s, 224 // s) for s in STRIDES)
    ours = peer_shifts(
        HeadOutputs(torch.zeros(1, 0, 4), torch.zeros(1, 0), torch.zeros(1, 0, 1), STRIDES, sizes)
    )
    for theirs, mine in zip(captured["shifts"], ours):
        assert torch.equal(theirs, mine)


@pytest.mark.parametrize(
    ("seed", "gts_per_image"),
    [
        (0, [0, 1, 3, 10, 50, 20, 5, 2]),  # no GT, many GTs, mixed padding
        (1, [50, 50, 50, 50]),
        (2, [7, 0, 0, 12]),
        (3, [1, 1, 2, 4, 8, 16, 32, 40]),
    ],
)
def test_assignment_identical_to_peer(peer_head, seed, gts_per_image):
    outputs, targets = random_batch(seed, gts_per_image)
    ours = assign("simota", outputs, targets)
    theirs = peer_assignments(peer_head, outputs, targets)
    assert int(ours.fg_mask.sum()) > 0
    for b, result in enumerate(theirs):
        if result is None:
            assert not ours.fg_mask[b].any()
            continue
        gt_classes, fg_mask, ious, matched_gt, _ = result
        assert torch.equal(ours.fg_mask[b], fg_mask)
        assert torch.equal(ours.matched_gt[b][fg_mask], matched_gt)
        assert torch.equal(ours.matched_iou[b][fg_mask], ious)
        assert torch.equal(targets.labels[b][ours.matched_gt[b][fg_mask]].float(), gt_classes)
        assert (ours.matched_gt[b][~fg_mask] == -1).all()


def test_equal_class_scores_everywhere_still_identical_to_peer(peer_head):
    """Class costs tie exactly across anchors (as with the prior-bias init); the IoU cost separates them."""
    outputs, targets = random_batch(8, [3, 10, 50, 1])
    outputs = outputs._replace(
        cls_logits=torch.full_like(outputs.cls_logits, -4.6),
        obj_logits=torch.full_like(outputs.obj_logits, -4.6),
    )
    ours = assign("simota", outputs, targets)
    for b, (_, fg_mask, ious, matched_gt, _) in enumerate(peer_assignments(peer_head, outputs, targets)):
        assert torch.equal(ours.fg_mask[b], fg_mask)
        assert torch.equal(ours.matched_gt[b][fg_mask], matched_gt)
        assert torch.equal(ours.matched_iou[b][fg_mask], ious)


def test_edge_cases_identical_to_peer(peer_head):
    """Tiny boxes, fewer than 10 candidates (M < 10), a GT with no candidate of its own next to one with
    candidates, and an image whose only GT lies outside the image (no candidate at all: 0 fg, as the peer)."""
    outputs, _ = random_batch(5, [1, 1, 1, 1])
    boxes = [
        torch.tensor([[101.0, 57.0, 2.0, 3.0]]),  # tiny box: its 9 + 9 + 9 centre squares overlap at most
        torch.tensor([[-10.0, -10.0, 30.0, 30.0]]),  # centre just outside: M = 2 candidates (< 10)
        torch.tensor([[-40.0, 100.0, 20.0, 20.0], [160.0, 160.0, 30.0, 60.0]]),  # first has no candidate
        torch.tensor([[-100.0, -100.0, 30.0, 30.0]]),  # outside: no candidate in the image at all
    ]
    labels = [torch.tensor([5]), torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([3])]
    targets = Targets.from_list(boxes, labels)
    ours = assign("simota", outputs, targets)
    theirs = peer_assignments(peer_head, outputs, targets)
    for b, (_, fg_mask, ious, matched_gt, _) in enumerate(theirs):
        assert torch.equal(ours.fg_mask[b], fg_mask)
        assert torch.equal(ours.matched_gt[b][fg_mask], matched_gt)
        assert torch.equal(ours.matched_iou[b][fg_mask], ious)
    assert ours.fg_mask[1].any() and ours.fg_mask[2].any()
    assert not ours.fg_mask[3].any()


def peer_2021_assignment(head: torch.nn.Module, outputs: HeadOutputs, targets: Targets, b: int) -> tuple:
    """The 2021 (0.1.1rc0) assigner for image ``b``, transcribed literally from reference §3.3: in-box ∪
    centre radius 2.5 candidates, full-matrix BCE class cost, 1e5 penalty outside box ∧ centre; matching by
    the peer's own ``simota_matching`` (unchanged since 2021). Returns (fg_mask [A], matched_gt [F],
    matched_iou [F])."""
    from yolox.utils import bboxes_iou

    n = int(targets.mask[b].sum())
    gt, gt_classes = targets.boxes_cxcywh[b, :n], targets.labels[b, :n].float()
    x_shifts, y_shifts, strides = peer_shifts(outputs)
    x_centres, y_centres = (x_shifts[0] + 0.5) * strides[0], (y_shifts[0] + 0.5) * strides[0]
    box_deltas = torch.stack(
        [
            x_centres - (gt[:, 0] - 0.5 * gt[:, 2])[:, None],
            y_centres - (gt[:, 1] - 0.5 * gt[:, 3])[:, None],
            (gt[:, 0] + 0.5 * gt[:, 2])[:, None] - x_centres,
            (gt[:, 1] + 0.5 * gt[:, 3])[:, None] - y_centres,
        ],
        dim=2,
    )
    radius = 2.5 * strides
    centre_deltas = torch.stack(
        [
            x_centres - (gt[:, 0:1] - radius),
            y_centres - (gt[:, 1:2] - radius),
            (gt[:, 0:1] + radius) - x_centres,
            (gt[:, 1:2] + radius) - y_centres,
        ],
        dim=2,
    )
    in_box, in_centre = box_deltas.min(dim=-1).values > 0, centre_deltas.min(dim=-1).values > 0
    fg_mask = in_box.any(0) | in_centre.any(0)
    box_and_centre = (in_box & in_centre)[:, fg_mask]
    pred = decode_boxes(outputs)[b][fg_mask]
    ious = bboxes_iou(gt, pred, False)
    probs = (outputs.cls_logits[b][fg_mask].sigmoid() * outputs.obj_logits[b][fg_mask, None].sigmoid()).sqrt()
    onehot = torch.nn.functional.one_hot(gt_classes.long(), probs.shape[-1]).float()
    cls_cost = torch.nn.functional.binary_cross_entropy(
        probs[None].repeat(n, 1, 1), onehot[:, None].repeat(1, len(pred), 1), reduction="none"
    ).sum(-1)
    cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 100000.0 * (~box_and_centre)
    _, _, matched_iou, matched_gt = head.simota_matching(cost, ious, gt_classes, n, fg_mask)
    return fg_mask, matched_gt, matched_iou


@pytest.mark.parametrize(("seed", "gts_per_image"), [(0, [1, 3, 10, 50]), (6, [20, 2, 7, 0])])
def test_2021_variant_matches_a_literal_transcription(peer_head, seed, gts_per_image):
    outputs, targets = random_batch(seed, gts_per_image)
    ours = assign("simota-2021", outputs, targets)
    assert int(ours.fg_mask.sum()) > 0
    for b, count in enumerate(gts_per_image):
        if count == 0:
            assert not ours.fg_mask[b].any()
            continue
        fg_mask, matched_gt, matched_iou = peer_2021_assignment(peer_head, outputs, targets, b)
        assert torch.equal(ours.fg_mask[b], fg_mask)
        assert torch.equal(ours.matched_gt[b][fg_mask], matched_gt)
        assert torch.equal(ours.matched_iou[b][fg_mask], matched_iou)
