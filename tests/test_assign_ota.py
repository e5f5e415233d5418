"""OTA assigner: Sinkhorn constraints, equality with an exact solver as eps -> 0, hand-made cases, padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from scipy.optimize import linear_sum_assignment

from yoloxdet.assign.ota import ota_assign, sinkhorn_log
from yoloxdet.structures import HeadOutputs, Targets


def test_sinkhorn_meets_supply_and_demand() -> None:
    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(2, 4, 30, generator=gen) * 5
    # Image 0: three suppliers + background; image 1: one padded (zero-supply) row.
    supply = torch.tensor([[3.0, 5.0, 2.0, 20.0], [4.0, 0.0, 6.0, 20.0]])
    log_plan = sinkhorn_log(cost, supply, torch.ones(2, 30), eps=0.1, iterations=2000)
    plan = log_plan.exp()
    assert not torch.isnan(log_plan).any()
    torch.testing.assert_close(plan.sum(dim=2), supply, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(plan.sum(dim=1), torch.ones(2, 30), atol=1e-3, rtol=0)
    assert plan[1, 1].abs().max() == 0  # no mass from the padded row


def test_sinkhorn_equals_ota_potential_updates() -> None:
    """Our scaling form against OTA's ``SinkhornDistance`` updates as the reference writes them (§9.1)."""
    gen = torch.Generator().manual_seed(1)
    cost = (torch.rand(1, 5, 40, generator=gen, dtype=torch.float64) * 8).clone()
    cost[0, :4, 20:] += 1e6  # penalised pairs, as outside the candidate region
    mu = torch.tensor([[2.0, 3.0, 1.0, 4.0, 30.0]], dtype=torch.float64)
    nu = torch.ones(1, 40, dtype=torch.float64)
    eps = 0.1
    u, v = torch.ones_like(mu), torch.ones_like(nu)

    def m(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (-cost + u[..., None] + v[:, None, :]) / eps

    for _ in range(50):
        v = eps * (torch.log(nu + 1e-8) - torch.logsumexp(m(u, v).transpose(-2, -1), dim=-1)) + v
        u = eps * (torch.log(mu + 1e-8) - torch.logsumexp(m(u, v), dim=-1)) + u
    expected = torch.exp(m(u, v))
    ours = sinkhorn_log(cost, mu, nu, eps=eps, iterations=50).exp()
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-9)


def grid_outputs(seed: int, num_classes: int = 3) -> HeadOutputs:
    """One 4x4 level, stride 8 (a 32x32 input), random head outputs with moderate boxes."""
    gen = torch.Generator().manual_seed(seed)
    return HeadOutputs(
        box_raw=torch.cat(
            [torch.rand(1, 16, 2, generator=gen), torch.rand(1, 16, 2, generator=gen) + 0.3], -1
        ),
        obj_logits=torch.randn(1, 16, generator=gen),
        cls_logits=torch.randn(1, 16, num_classes, generator=gen),
        strides=(8,),
        feature_sizes=((4, 4),),
    )


def reference_costs(outputs: HeadOutputs, boxes: torch.Tensor, labels: torch.Tensor, top_q: int):
    """Costs, dynamic k and background cost written directly from the OTA definition (slow, per pair)."""
    ys, xs = np.divmod(np.arange(16), 4)
    centers = np.stack([(xs + 0.5) * 8, (ys + 0.5) * 8], 1)
    pred = torch.stack(
        [
            (outputs.box_raw[0, :, 0] + torch.tensor(xs)) * 8,
            (outputs.box_raw[0, :, 1] + torch.tensor(ys)) * 8,
            outputs.box_raw[0, :, 2].exp() * 8,
            outputs.box_raw[0, :, 3].exp() * 8,
        ],
        1,
    )
    ious = torchvision.ops.box_iou(
        torchvision.ops.box_convert(boxes, "cxcywh", "xyxy"),
        torchvision.ops.box_convert(pred, "cxcywh", "xyxy"),
    )
    p = (outputs.cls_logits[0].sigmoid() * outputs.obj_logits[0, :, None].sigmoid()).sqrt()  # [A, C]
    num_classes = p.shape[1]
    fg = torch.zeros(len(boxes), 16)
    k = []
    for g, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
        cx, cy, w, h = box
        inside = [
            abs(x - cx) < w / 2 and abs(y - cy) < h / 2 and abs(x - cx) < 20 and abs(y - cy) < 20
            for x, y in centers
        ]
        onehot = F.one_hot(torch.tensor(label), num_classes).float()
        for a in range(16):
            cls = F.binary_cross_entropy(p[a], onehot, reduction="sum")
            fg[g, a] = cls + 3.0 * -math.log(ious[g, a] + 1e-8) + (0 if inside[a] else 1e6)
        candidate_ious = sorted((float(ious[g, a]) for a in range(16) if inside[a]), reverse=True)
        k.append(max(1, int(sum(candidate_ious[:top_q]))))
    bg = torch.stack(
        [F.binary_cross_entropy(p[a], torch.zeros(num_classes), reduction="sum") for a in range(16)]
    )
    return fg, bg, k


def exact_assignment(fg: torch.Tensor, bg: torch.Tensor, k: list[int]) -> torch.Tensor:
    """[A] matched GT (-1 background) from scipy's LSA on anchors x (GT g repeated k_g times + background
    slots)."""
    num_anchors = fg.shape[1]
    columns = [fg[g] for g in range(len(k)) for _ in range(k[g])] + [bg] * (num_anchors - sum(k))
    owner = [g for g in range(len(k)) for _ in range(k[g])] + [-1] * (num_anchors - sum(k))
    rows, cols = linear_sum_assignment(torch.stack(columns, 1).double().numpy())
    expected = torch.full((num_anchors,), -1)
    expected[torch.as_tensor(rows)] = torch.tensor([owner[c] for c in cols])
    return expected


@pytest.mark.parametrize("seed", range(6))
def test_small_eps_matches_exact_assignment(seed: int) -> None:
    # Two images in one padded batch: three GTs, and two GTs plus a padding row.
    images = [grid_outputs(seed), grid_outputs(seed + 100)]
    boxes = [
        torch.tensor([[12.0, 12, 20, 22], [20, 18, 18, 14], [26, 8, 10, 12]]),
        torch.tensor([[10.0, 20, 16, 20], [22, 10, 14, 16]]),
    ]
    labels = [torch.tensor([0, 2, 1]), torch.tensor([1, 1])]
    batch = HeadOutputs(
        *(torch.cat([getattr(o, f) for o in images]) for f in ("box_raw", "obj_logits", "cls_logits")),
        (8,),
        ((4, 4),),
    )
    result = ota_assign(batch, Targets.from_list(boxes, labels), eps=0.01, iterations=3000)
    for b in range(2):
        fg, bg, k = reference_costs(images[b], boxes[b], labels[b], top_q=20)
        expected = exact_assignment(fg, bg, k)
        assert result.matched_gt[b].tolist() == expected.tolist()
        assert result.fg_mask[b].tolist() == (expected >= 0).tolist()
        positive = expected >= 0
        torch.testing.assert_close(
            result.cost[b, positive], fg[expected[positive], positive.nonzero().flatten()]
        )


def test_hand_case_best_anchor_wins_and_padding_is_harmless() -> None:
    # Three anchors on a 1x3 level, stride 8. One GT covering anchors 0 and 1 (k = 1: IoUs sum < 2).
    # Anchor 1 predicts the GT box exactly with a confident class; anchor 0 is unsure; anchor 2 is outside.
    outputs = HeadOutputs(
        box_raw=torch.tensor([[[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, math.log(2.0), 0.0], [0.5, 0.5, 0.0, 0.0]]]),
        obj_logits=torch.tensor([[0.0, 6.0, -6.0]]),
        cls_logits=torch.tensor([[[0.0, 0.0], [6.0, -6.0], [-6.0, -6.0]]]),
        strides=(8,),
        feature_sizes=((1, 3),),
    )
    boxes = torch.tensor([[8.0, 4.0, 16.0, 8.0], [0.0, 0.0, 0.0, 0.0]])  # second row is padding
    targets = Targets(boxes[None], torch.tensor([[0, 1]]), torch.tensor([[True, False]]))
    result = ota_assign(outputs, targets)
    assert result.fg_mask.tolist() == [[False, True, False]]
    assert result.matched_gt.tolist() == [[-1, 0, -1]]
    assert result.matched_iou[0, 1].item() == pytest.approx(1.0)
    assert not torch.isnan(result.cost).any()


def test_empty_batch_and_image_without_gt() -> None:
    outputs = HeadOutputs(torch.zeros(2, 16, 4), torch.zeros(2, 16), torch.zeros(2, 16, 3), (8,), ((4, 4),))
    none = ota_assign(outputs, Targets.from_list([torch.zeros(0, 4)] * 2, [torch.zeros(0)] * 2))
    assert not none.fg_mask.any() and (none.matched_gt == -1).all()
    one = ota_assign(
        outputs,
        Targets.from_list(
            [torch.tensor([[16.0, 16, 20, 20]]), torch.zeros(0, 4)], [torch.tensor([1]), torch.zeros(0)]
        ),
    )
    assert one.fg_mask[0].any() and not one.fg_mask[1].any()
    assert set(one.matched_gt[0, one.fg_mask[0]].tolist()) == {0}


def test_gt_without_candidates_still_gets_its_cheapest_anchor() -> None:
    # A 2x2 GT at (8, 8) holds no anchor centre (they sit at 4, 12, 20, 28): every pair pays the penalty.
    # Anchor 5 (cell (1, 1)) predicts the GT box exactly, the others do not overlap it: it is by far the
    # cheapest.
    box_raw = torch.zeros(1, 16, 4)
    box_raw[0, 5] = torch.tensor([0.0, 0.0, math.log(0.25), math.log(0.25)])
    outputs = HeadOutputs(box_raw, torch.zeros(1, 16), torch.zeros(1, 16, 2), (8,), ((4, 4),))
    result = ota_assign(outputs, Targets.from_list([torch.tensor([[8.0, 8, 2, 2]])], [torch.tensor([1])]))
    assert result.fg_mask[0].nonzero().flatten().tolist() == [5]
    assert result.matched_iou[0, 5].item() == pytest.approx(1.0)
    assert result.cost[0, 5].item() > 1e6  # the penalty is part of the reported cost


def test_half_precision_outputs() -> None:
    outputs = grid_outputs(0)
    half = outputs._replace(
        box_raw=outputs.box_raw.half(),
        obj_logits=outputs.obj_logits.half(),
        cls_logits=outputs.cls_logits.half(),
    )
    targets = Targets.from_list([torch.tensor([[12.0, 12, 20, 22]])], [torch.tensor([0])])
    result = ota_assign(half, targets)
    assert result.fg_mask.any() and result.matched_iou.dtype == torch.float32
    assert torch.isfinite(result.cost).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = ota_assign(half, targets)
    assert torch.equal(under_autocast.cost, result.cost) and torch.equal(
        under_autocast.fg_mask, result.fg_mask
    )
