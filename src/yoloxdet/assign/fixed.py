"""Fixed, prediction-independent assigners from the YOLOX roadmap (paper Table 2): one positive per GT, and
the 3×3 centre region ("multi positives").

Rules (chosen here; the paper does not spell them out):

- **Level by size**: each GT goes to the one FPN level whose stride makes its longer side closest to
  ``cells_per_box = 8`` cells in log scale, ``argmin_l |log2(max(w, h) / (8·stride_l))|``. With strides
  8/16/32 this is FCOS-like: max side below ~90 px -> stride 8, ~90–181 px -> stride 16, above -> stride 32.
  Ties go to the finer level.
- **Single positive**: the cell of that level containing the GT centre (``floor(c / stride)``, clamped to the
  grid so a centre on the far edge still has a cell).
- **Centre 3×3**: the 3×3 cells around that cell on the same level, as the roadmap's "assign the center 3×3
  area as positives" extends the single positive; cells off the grid are dropped.
- **Conflicts**: an anchor claimed by several GTs goes to the smallest GT (by area; ties to the lower index),
  the usual rule for fixed assigners, so small objects are not swallowed by the large ones around them.

``Assignment.cost`` holds, for each positive, the SimOTA-form cost ``cls + 3·(-log IoU)`` of the current
predictions, so pictures can compare it with the learned assigners; ``matched_iou`` is the IoU of the decoded
prediction with its GT (the loss's IoU-aware class target).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..ops.boxes import pairwise_iou_cxcywh
from ..ops.decode import anchor_points, decode_boxes
from ..structures import Assignment, HeadOutputs, Targets
from .simota import IOU_COST_EPS, IOU_COST_WEIGHT, class_cost


def level_by_size(boxes_cxcywh: Tensor, strides: tuple[int, ...], cells_per_box: float = 8.0) -> Tensor:
    """[..., G] index of the FPN level whose stride puts the box's longer side closest to ``cells_per_box``
    cells."""
    max_side = boxes_cxcywh[..., 2:4].amax(dim=-1).clamp(min=1e-6)
    log_strides = torch.tensor([math.log2(s) for s in strides], device=boxes_cxcywh.device)
    distance = (max_side.log2()[..., None] - math.log2(cells_per_box) - log_strides).abs()
    return distance.argmin(dim=-1)


def _anchor_levels(outputs: HeadOutputs) -> tuple[Tensor, Tensor]:
    """Cell (x, y) [A, 2] and level index [A] of every anchor point."""
    device = outputs.box_raw.device
    grid_xy, _ = anchor_points(outputs.feature_sizes, outputs.strides, device, torch.float32)
    counts = torch.tensor([h * w for h, w in outputs.feature_sizes], device=device)
    return grid_xy, torch.repeat_interleave(torch.arange(len(counts), device=device), counts)


def _center_cells(boxes_cxcywh: Tensor, level: Tensor, outputs: HeadOutputs) -> Tensor:
    """[B, G, 2] cell (x, y) containing each GT centre on its level, clamped to that level's grid."""
    device = boxes_cxcywh.device
    stride = torch.tensor(outputs.strides, dtype=torch.float32, device=device)[level]  # [B, G]
    sizes = torch.tensor(outputs.feature_sizes, dtype=torch.float32, device=device)[level]  # [B, G, (h, w)]
    cells = torch.floor(boxes_cxcywh[..., :2] / stride[..., None])
    return torch.minimum(cells.clamp(min=0), sizes.flip(-1) - 1)


@torch.no_grad()
def fixed_assign(
    outputs: HeadOutputs, targets: Targets, *, radius: int, cells_per_box: float = 8.0
) -> Assignment:
    """Positives: the ``(2·radius + 1)²`` cells around each GT's centre cell on its size-chosen level."""
    if targets.boxes_cxcywh.shape[1] == 0:
        return Assignment.background(*outputs.obj_logits.shape, outputs.obj_logits.device)
    with torch.autocast(outputs.obj_logits.device.type, enabled=False):  # float32 costs under AMP too
        return _fixed(outputs, targets, radius, cells_per_box)


def _fixed(outputs: HeadOutputs, targets: Targets, radius: int, cells_per_box: float) -> Assignment:
    boxes = targets.boxes_cxcywh.float()
    level = level_by_size(boxes, outputs.strides, cells_per_box)  # [B, G]
    cells = _center_cells(boxes, level, outputs)  # [B, G, 2]
    grid_xy, anchor_level = _anchor_levels(outputs)
    near = ((grid_xy - cells[..., None, :]).abs() <= radius).all(dim=-1)  # [B, G, A]
    claims = near & (anchor_level == level[..., None]) & targets.mask[..., None]

    area = (boxes[..., 2] * boxes[..., 3])[..., None].expand_as(claims)
    claimed_area = torch.where(claims, area, float("inf"))
    fg_mask = claims.any(dim=1)  # [B, A]
    matched = claimed_area.argmin(dim=1)  # smallest claiming GT; only meaningful where fg

    matched_boxes = boxes.gather(1, matched[..., None].expand(-1, -1, 4))  # [B, A, 4]
    pred_boxes = decode_boxes(outputs._replace(box_raw=outputs.box_raw.float()))
    ious = pairwise_iou_cxcywh(matched_boxes[..., None, :], pred_boxes[..., None, :])[..., 0, 0]  # [B, A]
    ious = torch.where(fg_mask, ious, 0.0)
    # Price only the positives (a few per GT): the full [B, A, C] BCE would dominate the assigner's time.
    fg_b, fg_a = fg_mask.nonzero(as_tuple=True)
    labels = targets.labels[fg_b, matched[fg_b, fg_a]][:, None]  # [F, 1]
    cls_cost = class_cost(
        outputs.cls_logits[fg_b, fg_a][:, None], outputs.obj_logits[fg_b, fg_a][:, None], labels
    )
    cost = torch.zeros_like(ious)
    cost[fg_b, fg_a] = cls_cost[:, 0, 0] + IOU_COST_WEIGHT * -torch.log(ious[fg_b, fg_a] + IOU_COST_EPS)
    return Assignment(
        fg_mask=fg_mask,
        matched_gt=torch.where(fg_mask, matched, -1),
        matched_iou=ious,
        cost=cost,
    )


def single_assign(outputs: HeadOutputs, targets: Targets, *, cells_per_box: float = 8.0) -> Assignment:
    """One positive per GT: the centre cell on the size-chosen level (may be lost to a smaller GT)."""
    return fixed_assign(outputs, targets, radius=0, cells_per_box=cells_per_box)


def center3x3_assign(outputs: HeadOutputs, targets: Targets, *, cells_per_box: float = 8.0) -> Assignment:
    """The 3×3 cells around the centre cell on the size-chosen level (the roadmap's multi positives)."""
    return fixed_assign(outputs, targets, radius=1, cells_per_box=cells_per_box)
