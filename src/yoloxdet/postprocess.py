"""Decoding raw head outputs into boxes, and NMS into per-image detections (reference §2.5, §2.6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torchvision
from torch import Tensor

from .ops.boxes import cxcywh_to_xyxy
from .structures import HeadOutputs


def anchor_points(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    like: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Cell indices and stride of every anchor point, levels concatenated, row-major (y outer, x inner).

    ``like``: build on its device and dtype (instead of ``device``/``dtype``) with ``Tensor.new_*`` calls,
    which a traced graph records without a device constant: an export runs on whatever device its input is on.

    Returns:
        grid_xy: [A, 2] cell (x, y) index within its level.
        stride: [A] stride of the level.
    """
    grids, level_strides = [], []
    for (h, w), s in zip(feature_sizes, strides):
        if like is None:
            rows = torch.arange(h, device=device, dtype=dtype)
            cols = torch.arange(w, device=device, dtype=dtype)
            level_stride = torch.full((h * w,), float(s), device=device, dtype=dtype)
        else:
            rows, cols = arange_like(h, like), arange_like(w, like)
            level_stride = like.new_full((h * w,), float(s))
        ys, xs = torch.meshgrid(rows, cols, indexing="ij")
        grids.append(torch.stack([xs, ys], dim=-1).reshape(-1, 2))
        level_strides.append(level_stride)
    return torch.cat(grids), torch.cat(level_strides)


def arange_like(n: int | Tensor, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``torch.arange(n)`` on ``like``'s device (in ``dtype``, default ``like``'s) without a device constant
    in a traced graph (``torch.arange(..., device=...)`` bakes the tracing device in)."""
    return like.new_ones(n, dtype=dtype).cumsum(0) - 1


def decode_boxes(outputs: HeadOutputs) -> Tensor:
    """[B, A, 4] boxes cxcywh in input pixels: (t_xy + grid) * stride, exp(t_wh) * stride (no +0.5, no clamp)."""
    raw = outputs.box_raw
    grid_xy, stride = anchor_points(outputs.feature_sizes, outputs.strides, like=raw)
    stride = stride[:, None]
    return torch.cat([(raw[..., :2] + grid_xy) * stride, raw[..., 2:4].exp() * stride], dim=-1)


def decode(outputs: HeadOutputs) -> Tensor:
    """[B, A, 5 + C]: decoded cxcywh boxes, sigmoid(obj), sigmoid(cls) — the official inference layout."""
    return torch.cat(
        [decode_boxes(outputs), outputs.obj_logits.sigmoid()[..., None], outputs.cls_logits.sigmoid()], dim=-1
    )


class RawDetections(NamedTuple):
    """Detections of one image in input (letterboxed) pixels."""

    boxes_xyxy: Tensor  # [N, 4]
    scores: Tensor  # [N] obj * class prob
    class_ids: Tensor  # [N] int64


def postprocess(
    decoded: Tensor,
    conf_threshold: float = 0.001,
    nms_iou_threshold: float = 0.65,
    class_agnostic: bool = False,
    max_detections: int | None = None,
) -> list[RawDetections]:
    """Score filter and NMS per image, as official ``postprocess``: one label per box (argmax class),
    keep ``obj * cls >= conf_threshold``, class-aware ``batched_nms`` unless ``class_agnostic``.

    Args:
        decoded: [B, A, 5 + C] from :func:`decode`.
        max_detections: optional cap on kept boxes per image (official has none).
    """
    results = []
    for image_pred in decoded:
        class_conf, class_pred = image_pred[:, 5:].max(dim=1)
        scores = image_pred[:, 4] * class_conf
        keep = scores >= conf_threshold
        boxes = cxcywh_to_xyxy(image_pred[keep, :4])
        scores, class_pred = scores[keep], class_pred[keep]
        if class_agnostic:
            kept = torchvision.ops.nms(boxes, scores, nms_iou_threshold)
        else:
            kept = torchvision.ops.batched_nms(boxes, scores, class_pred, nms_iou_threshold)
        if max_detections is not None:
            kept = kept[:max_detections]
        results.append(RawDetections(boxes[kept], scores[kept], class_pred[kept]))
    return results
