"""Box conversions and pairwise IoU as pure functions. Formats are named in every signature."""

from __future__ import annotations

import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes_cxcywh: Tensor) -> Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    cxcy, wh = boxes_cxcywh[..., :2], boxes_cxcywh[..., 2:4]
    return torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=-1)


def xyxy_to_cxcywh(boxes_xyxy: Tensor) -> Tensor:
    """[..., 4] (x1, y1, x2, y2) -> [..., 4] (cx, cy, w, h)."""
    x1y1, x2y2 = boxes_xyxy[..., :2], boxes_xyxy[..., 2:4]
    return torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], dim=-1)


def pairwise_iou_cxcywh(boxes1_cxcywh: Tensor, boxes2_cxcywh: Tensor) -> Tensor:
    """IoU of every pair, batched over leading dims: [..., N, 4] x [..., M, 4] -> [..., N, M].

    As the official ``bboxes_iou(xyxy=False)``: no epsilon in the denominator, and a pair with no overlap gets
    exactly 0 (so degenerate zero-area boxes give 0/0 only when both are empty, which the callers avoid).
    """
    b1 = boxes1_cxcywh.unsqueeze(-2)  # [..., N, 1, 4]
    b2 = boxes2_cxcywh.unsqueeze(-3)  # [..., 1, M, 4]
    top_left = torch.maximum(b1[..., :2] - b1[..., 2:] / 2, b2[..., :2] - b2[..., 2:] / 2)
    bottom_right = torch.minimum(b1[..., :2] + b1[..., 2:] / 2, b2[..., :2] + b2[..., 2:] / 2)
    area1 = b1[..., 2] * b1[..., 3]
    area2 = b2[..., 2] * b2[..., 3]
    overlaps = (top_left < bottom_right).to(top_left.dtype).prod(dim=-1)
    inter = (bottom_right - top_left).prod(dim=-1) * overlaps
    return inter / (area1 + area2 - inter)
