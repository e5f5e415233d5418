"""The anchor grid and box decoding of raw head outputs (reference §2.5), shared by training and inference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..structures import HeadOutputs


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
    """[B, A, 4] boxes cxcywh in input pixels: (t_xy + grid) * stride, exp(t_wh) * stride (no +0.5, no
    clamp)."""
    raw = outputs.box_raw
    grid_xy, stride = anchor_points(outputs.feature_sizes, outputs.strides, like=raw)
    stride = stride[:, None]
    return torch.cat([(raw[..., :2] + grid_xy) * stride, raw[..., 2:4].exp() * stride], dim=-1)


def decode(outputs: HeadOutputs) -> Tensor:
    """[B, A, 5 + C]: decoded cxcywh boxes, sigmoid(obj), sigmoid(cls) — the official inference layout."""
    return torch.cat(
        [decode_boxes(outputs), outputs.obj_logits.sigmoid()[..., None], outputs.cls_logits.sigmoid()], dim=-1
    )
