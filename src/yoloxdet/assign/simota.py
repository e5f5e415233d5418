"""SimOTA label assignment, batched (reference §3.2, §3.3, §9.2).

Everything runs on padded tensors over the whole batch: no loop per image or per ground truth, and no host
synchronisation (shapes depend only on ``B``, ``G``, ``A`` and the variant). Memory is bounded by splitting
the batch into chunks whose ``[b, G, A]`` work fits ``max_elements``.

Faithfulness to the official per-image code:

* Costs are computed only over the image's *candidates* (anchors inside any ground truth's centre region, or
  for the 2021 variant inside any box or any centre region), packed to a fixed capacity ``K`` per image.
  Padded slots get infinite cost and zero IoU, so the top-``min(10, M)`` IoU sum for the dynamic ``k`` and the
  top-``k`` selection see the image's own ``M`` candidates only, including ``M < 10``.
* The class cost ``Σ_c BCE(sqrt(σ(cls)·σ(obj)), onehot)`` (logs clamped at -100, as
  ``F.binary_cross_entropy``) is evaluated as ``Σ_c BCE(p_c, 0) - BCE(p_t, 0) + BCE(p_t, 1)``: the same value
  without the ``G·M·C`` tensor. It can differ from the official sum by float rounding (~1e-6), so two
  candidates whose costs tie to that precision may be ordered differently; on realistic batches assignments
  are identical (tests/oracle/test_assign_oracle.py).
* Exact ties (e.g. identical predicted boxes *and* identical scores at many anchors) are broken by one
  ``topk`` over the padded row instead of official's per-gt ``topk(k)``; among exactly equal costs either
  choice is arbitrary.
* Conflicts (an anchor selected by several ground truths) go to ``argmin_g cost`` over *all* the image's
  ground truths, exactly as official.

Edge cases (documented behaviour):

* An image without ground truth gets no positives.
* If no anchor of an image is a candidate (e.g. every centre lies outside the image), the image gets no
  positives (as pixeltable-yolox; official raises).
* A ground truth without candidates of its own still takes its ``k`` cheapest candidates of the other ground
  truths (they carry the penalty), as official. A ground truth can end up with no positive after conflicts;
  nothing reassigns it.

Cost and IoU are computed in float32 whatever the outputs' dtype (AMP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops.boxes import pairwise_iou_cxcywh
from ..ops.decode import anchor_points
from ..structures import Assignment, HeadOutputs, Targets

TOPK_IOU_CANDIDATES = 10  # dynamic k = int(sum of the top-10 IoUs), clamped to >= 1
IOU_COST_WEIGHT = 3.0
IOU_COST_EPS = 1e-8
BCE_LOG_CLAMP = 100.0  # F.binary_cross_entropy clamps log terms at -100


@dataclass(frozen=True)
class SimOTAVariant:
    """Which anchors are candidates and which pairs pay the geometric penalty."""

    center_radius: float  # half-side of the centre square, in strides of the anchor's level
    use_in_box: bool  # also require / admit anchor centres strictly inside the box (2021 variant)
    penalty: float  # added to the cost of a pair outside the geometric prior


CURRENT = SimOTAVariant(center_radius=1.5, use_in_box=False, penalty=1e6)  # official HEAD (PR #1589)
PAPER_2021 = SimOTAVariant(center_radius=2.5, use_in_box=True, penalty=1e5)  # the released weights' assigner


def geometric_prior(
    gt_boxes_cxcywh: Tensor, gt_mask: Tensor, outputs: HeadOutputs, variant: SimOTAVariant
) -> tuple[Tensor, Tensor]:
    """Candidate anchors and the prior of every (gt, anchor) pair.

    Anchor centres are ``(grid + 0.5) * stride``. "Inside" is strict, as official (``min(deltas) > 0``).
    Computed level by level from separable x/y tests, so the cost is ``B·G·(H+W)`` plus one ``[B, G, A]`` AND.

    Returns:
        candidate: [B, A] bool, anchors the image's costs are computed on.
        prior: [B, G, A] bool, pairs that pay no penalty (False for padded ground truths).
    """
    cx, cy, w, h = gt_boxes_cxcywh.float().unbind(-1)  # each [B, G]
    in_center, in_box = [], []
    for (level_h, level_w), stride in zip(outputs.feature_sizes, outputs.strides):
        xs = (torch.arange(level_w, device=cx.device, dtype=cx.dtype) + 0.5) * stride
        ys = (torch.arange(level_h, device=cx.device, dtype=cx.dtype) + 0.5) * stride
        radius = stride * variant.center_radius
        in_center.append(_inside(xs, ys, cx - radius, cx + radius, cy - radius, cy + radius))
        if variant.use_in_box:
            in_box.append(_inside(xs, ys, cx - 0.5 * w, cx + 0.5 * w, cy - 0.5 * h, cy + 0.5 * h))
    valid = gt_mask[..., None]
    centre = torch.cat(in_center, dim=-1) & valid
    if not variant.use_in_box:
        return centre.any(dim=1), centre
    box = torch.cat(in_box, dim=-1) & valid
    return (centre | box).any(dim=1), centre & box


def _inside(xs: Tensor, ys: Tensor, left: Tensor, right: Tensor, top: Tensor, bottom: Tensor) -> Tensor:
    """[B, G, H*W] whether each cell centre lies strictly inside each [B, G] interval pair."""
    in_x = (xs > left[..., None]) & (xs < right[..., None])  # [B, G, W]
    in_y = (ys > top[..., None]) & (ys < bottom[..., None])  # [B, G, H]
    return (in_y[..., :, None] & in_x[..., None, :]).flatten(-2)


def candidate_capacity(outputs: HeadOutputs, num_gt_slots: int, variant: SimOTAVariant) -> int:
    """A static upper bound on candidates per image, so packing needs no host synchronisation.

    An open interval ``2r`` strides long holds at most ``ceil(2r)`` cell centres per axis, so a ground truth
    has at most ``ceil(2r)²`` centre candidates per level. The in-box test has no such bound (a box can cover
    the image).
    """
    num_anchors = sum(h * w for h, w in outputs.feature_sizes)
    if variant.use_in_box:
        return num_anchors
    per_gt = len(outputs.strides) * math.ceil(2 * variant.center_radius) ** 2
    return max(1, min(num_anchors, per_gt * num_gt_slots))


def pack_candidates(candidate: Tensor, capacity: int) -> tuple[Tensor, Tensor]:
    """Indices of each image's candidate anchors, in anchor order, padded to ``capacity``.

    Returns:
        index: [B, K] anchor index (0 in padded slots).
        valid: [B, K] bool, False in padded slots.
    """
    batch, num_anchors = candidate.shape
    slot = torch.cumsum(candidate, dim=1) - 1
    # Non-candidates (and, were the bound ever wrong, overflow) go to a spill column that is dropped.
    slot = torch.where(candidate & (slot < capacity), slot, capacity)
    anchors = torch.arange(num_anchors, device=candidate.device).expand(batch, -1)
    index = torch.zeros(batch, capacity + 1, dtype=torch.long, device=candidate.device)
    index.scatter_(1, slot, anchors)
    count = candidate.sum(dim=1, keepdim=True)
    valid = torch.arange(capacity, device=candidate.device) < count
    return index[:, :capacity] * valid, valid


def class_cost(cls_logits: Tensor, obj_logits: Tensor, gt_labels: Tensor) -> Tensor:
    """[B, G, K] ``Σ_c BCE(sqrt(σ(cls)·σ(obj)), onehot(label))`` with logs clamped at -100, in float32.

    Args:
        cls_logits: [B, K, C]; obj_logits: [B, K]; gt_labels: [B, G] int64.
    """
    prob = (cls_logits.float().sigmoid() * obj_logits.float().sigmoid()[..., None]).sqrt()
    # F.binary_cross_entropy semantics (logs clamped at -100), but vectorised log1p: its scalar kernel is ~10x
    # slower and agrees to an ulp, well inside the rounding the decomposition already differs by.
    neg = torch.log1p(-prob).clamp_(min=-BCE_LOG_CLAMP).neg_()  # [B, K, C]  BCE(p, 0)
    index = gt_labels[:, None, :].expand(-1, prob.shape[1], -1)  # [B, K, G]
    pos = torch.log(prob.gather(2, index)).clamp_(min=-BCE_LOG_CLAMP).neg_()  # BCE(p_label, 1)
    return (neg.sum(dim=2)[..., None] + (pos - neg.gather(2, index))).transpose(1, 2)


def decode_candidates(outputs: HeadOutputs, index: Tensor) -> Tensor:
    """[B, K, 4] float32 decoded cxcywh boxes of the anchors in ``index`` [B, K].

    Same formula as :func:`yoloxdet.ops.decode.decode_boxes`, applied after gathering so only candidates pay
    for it.
    """
    grid_xy, stride = anchor_points(outputs.feature_sizes, outputs.strides, index.device)
    raw = outputs.box_raw.float().gather(1, index[..., None].expand(-1, -1, 4))
    grid_xy, stride = grid_xy[index], stride[index][..., None]
    return torch.cat([(raw[..., :2] + grid_xy) * stride, raw[..., 2:4].exp() * stride], dim=-1)


def pair_costs(
    outputs: HeadOutputs,
    targets: Targets,
    index: Tensor,
    valid: Tensor,
    prior: Tensor,
    variant: SimOTAVariant,
) -> tuple[Tensor, Tensor]:
    """Cost and IoU of every (gt, candidate) pair: [B, G, K] each, float32.

    Pairs with a padded gt or a padded candidate get cost +inf and IoU 0.
    """
    pred = decode_candidates(outputs, index)
    pair_valid = targets.mask[:, :, None] & valid[:, None, :]
    iou = pairwise_iou_cxcywh(targets.boxes_cxcywh.float(), pred)
    iou = torch.where(pair_valid, iou, 0.0)
    cls_logits = outputs.cls_logits.gather(1, index[..., None].expand(-1, -1, outputs.cls_logits.shape[-1]))
    cls = class_cost(cls_logits, outputs.obj_logits.gather(1, index), targets.labels)
    outside = ~prior.gather(2, index[:, None, :].expand(-1, prior.shape[1], -1))
    cost = cls + IOU_COST_WEIGHT * -torch.log(iou + IOU_COST_EPS) + variant.penalty * outside
    return torch.where(pair_valid, cost, math.inf), iou


def simota_match(cost: Tensor, iou: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Dynamic-k matching with conflicts resolved by minimum cost, on [B, G, K] padded pairs.

    Returns per candidate slot: matched gt [B, K] (-1 for background), its IoU and its cost.
    """
    num_slots = cost.shape[2]
    top = min(TOPK_IOU_CANDIDATES, num_slots)
    dynamic_k = iou.topk(top, dim=2).values.sum(dim=2).int().clamp(min=1)  # [B, G]
    cheapest = cost.topk(top, dim=2, largest=False)
    chosen = (torch.arange(top, device=cost.device) < dynamic_k[..., None]) & cheapest.values.isfinite()
    matching = torch.zeros_like(cost, dtype=torch.int32).scatter_(2, cheapest.indices, chosen.int())
    times_chosen = matching.sum(dim=1)  # [B, K]
    argmin_gt = cost.argmin(dim=1)
    matched = torch.where(times_chosen > 1, argmin_gt, matching.argmax(dim=1))
    matched = torch.where(times_chosen > 0, matched, -1)
    safe = matched.clamp(min=0)[:, None, :]
    matched_iou = torch.where(times_chosen > 0, iou.gather(1, safe)[:, 0], 0.0)
    matched_cost = torch.where(times_chosen > 0, cost.gather(1, safe)[:, 0], 0.0)
    return matched, matched_iou, matched_cost


def simota_assign(
    outputs: HeadOutputs,
    targets: Targets,
    *,
    variant: SimOTAVariant = CURRENT,
    max_elements: int = 1 << 25,
) -> Assignment:
    """SimOTA for a batch.

    ``max_elements`` bounds the largest intermediate of one batch chunk (``b·G·A`` geometry, ``b·G·K`` costs,
    ``b·K·C`` class terms), so memory stays bounded without an out-of-memory fallback; it never changes
    results.
    """
    batch, num_anchors = outputs.obj_logits.shape
    num_gt_slots = targets.mask.shape[1]
    capacity = candidate_capacity(outputs, num_gt_slots, variant)
    per_image = max(1, num_gt_slots * num_anchors, capacity * outputs.cls_logits.shape[-1])
    chunk = max(1, max_elements // per_image)
    # Costs and IoUs are float32 by explicit casts; autocast is switched off so no op is silently downcast.
    with torch.autocast(outputs.obj_logits.device.type, enabled=False):
        parts = [
            _simota_chunk(
                _slice_outputs(outputs, start, start + chunk),
                _slice_targets(targets, start, start + chunk),
                variant,
            )
            for start in range(0, batch, chunk)
        ]
    if len(parts) == 1:
        return parts[0]
    return Assignment(
        *(torch.cat([getattr(p, f) for p in parts]) for f in ("fg_mask", "matched_gt", "matched_iou", "cost"))
    )


def _simota_chunk(outputs: HeadOutputs, targets: Targets, variant: SimOTAVariant) -> Assignment:
    batch, num_anchors = outputs.obj_logits.shape
    device = outputs.obj_logits.device
    if targets.mask.shape[1] == 0:
        return Assignment.background(batch, num_anchors, device)
    candidate, prior = geometric_prior(targets.boxes_cxcywh, targets.mask, outputs, variant)
    index, valid = pack_candidates(candidate, candidate_capacity(outputs, targets.mask.shape[1], variant))
    cost, iou = pair_costs(outputs, targets, index, valid, prior, variant)
    matched, matched_iou, matched_cost = simota_match(cost, iou)
    # Padded slots are never matched; send them to a spill column so they cannot overwrite anchor 0.
    target_index = torch.where(valid, index, num_anchors)
    matched_gt = _scatter_slots(matched, target_index, num_anchors, -1)
    return Assignment(
        fg_mask=matched_gt >= 0,
        matched_gt=matched_gt,
        matched_iou=_scatter_slots(matched_iou, target_index, num_anchors, 0.0),
        cost=_scatter_slots(matched_cost, target_index, num_anchors, 0.0),
    )


def _scatter_slots(values: Tensor, target_index: Tensor, num_anchors: int, fill: float) -> Tensor:
    out = values.new_full((values.shape[0], num_anchors + 1), fill)
    return out.scatter_(1, target_index, values)[:, :num_anchors]


def _slice_outputs(outputs: HeadOutputs, start: int, stop: int) -> HeadOutputs:
    return outputs._replace(
        box_raw=outputs.box_raw[start:stop],
        obj_logits=outputs.obj_logits[start:stop],
        cls_logits=outputs.cls_logits[start:stop],
    )


def _slice_targets(targets: Targets, start: int, stop: int) -> Targets:
    return Targets(targets.boxes_cxcywh[start:stop], targets.labels[start:stop], targets.mask[start:stop])
