"""Pictures of label assignment: which anchor points become positives for which GT, at which stride.

One panel per assigner, drawn on the letterboxed input image: every GT outlined in its own colour, every
positive anchor point marked at its centre ``(cell + 0.5) * stride`` in the colour of its GT, with a marker
shape and size per stride (stride 8 a small dot, 16 a square, 32 a large diamond, coarser levels larger
diamonds) so all levels overlay on one image. A title bar names the assigner and the positives per GT.
:func:`positive_rows` gives the same positives as JSON-ready rows with their cost and IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ..ops.decode import anchor_points
from ..structures import Assignment, HeadOutputs
from ..viz import class_color

_TITLE_HEIGHT = 64
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def gt_color(gt_index: int) -> tuple[int, int, int]:
    """BGR colour of a GT: the class palette walked in steps of 7 (coprime with its 20 colours), so
    neighbouring GT indices get clearly different hues."""
    return class_color(gt_index * 7)


def positive_rows(assignment: Assignment, outputs: HeadOutputs, image_index: int = 0) -> list[dict[str, Any]]:
    """The positives of one image: anchor index, GT index, stride, cell, centre (input pixels), cost and
    IoU."""
    grid_xy, stride = anchor_points(outputs.feature_sizes, outputs.strides)
    fg = assignment.fg_mask[image_index].cpu()
    matched_gt = assignment.matched_gt[image_index].cpu()
    matched_iou = assignment.matched_iou[image_index].float().cpu()
    cost = (
        assignment.cost[image_index].cpu()
        if assignment.cost is not None
        else torch.full(fg.shape, float("nan"))
    )
    rows = []
    for a in fg.nonzero().flatten().tolist():
        s = float(stride[a])
        cx, cy = (float(v) for v in grid_xy[a])
        rows.append(
            {
                "anchor": a,
                "gt": int(matched_gt[a]),
                "stride": int(s),
                "cell_xy": [int(cx), int(cy)],
                "center_xy": [(cx + 0.5) * s, (cy + 0.5) * s],
                "cost": float(cost[a]),
                "iou": float(matched_iou[a]),
            }
        )
    return rows


def positives_per_gt(rows: Sequence[dict[str, Any]], num_gt: int) -> list[int]:
    """How many positives each GT received (``num_gt`` entries, zeros included)."""
    counts = [0] * num_gt
    for row in rows:
        counts[row["gt"]] += 1
    return counts


def _marker(canvas: np.ndarray, center: tuple[int, int], stride: int, color: tuple[int, int, int]) -> None:
    """Dot for stride 8, square for 16, diamond for 32 and coarser; outlined in black to stand out."""
    x, y = center
    if stride <= 8:
        cv2.circle(canvas, center, 3, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(canvas, center, 2, color, -1, cv2.LINE_AA)
        return
    half = 4 if stride <= 16 else 3 + stride // 8
    if stride <= 16:
        points = np.array(
            [[x - half, y - half], [x + half, y - half], [x + half, y + half], [x - half, y + half]]
        )
    else:
        points = np.array([[x, y - half], [x + half, y], [x, y + half], [x - half, y]])
    cv2.fillPoly(canvas, [points.astype(np.int32)], color, cv2.LINE_AA)
    cv2.polylines(canvas, [points.astype(np.int32)], True, (0, 0, 0), 1, cv2.LINE_AA)


def draw_assignment(
    image_bgr: np.ndarray,
    gt_boxes_xyxy: np.ndarray,
    rows: Sequence[dict[str, Any]],
    title: str,
    strides: Sequence[int] = (8, 16, 32),
) -> np.ndarray:
    """A new image: a title bar above ``image_bgr`` with GTs outlined and positives marked, colour per GT
    index.

    Args:
        image_bgr: [H, W, 3] uint8, the (letterboxed) model input.
        gt_boxes_xyxy: [G, 4] in the same pixels.
        rows: positives from :func:`positive_rows`.
        strides: the model's strides, for the marker legend.
    """
    canvas = image_bgr.copy()
    for g, box in enumerate(np.asarray(gt_boxes_xyxy).reshape(-1, 4)):
        x1, y1, x2, y2 = (int(v) for v in np.rint(box))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), gt_color(g), 2, cv2.LINE_AA)
        cv2.putText(canvas, f"#{g}", (x1 + 3, y1 + 14), _FONT, 0.45, gt_color(g), 1, cv2.LINE_AA)
    # Coarse strides first so the small stride-8 dots stay visible on top.
    for row in sorted(rows, key=lambda r: -r["stride"]):
        center = (round(row["center_xy"][0]), round(row["center_xy"][1]))
        _marker(canvas, center, row["stride"], gt_color(row["gt"]))
    bar = np.full((_TITLE_HEIGHT, canvas.shape[1], 3), 255, np.uint8)
    counts = positives_per_gt(rows, len(gt_boxes_xyxy))
    lines = [
        title,
        "positives per GT: " + " ".join(str(c) for c in counts) + f"  (total {len(rows)})",
        legend_text(strides),
    ]
    for i, text in enumerate(lines):
        cv2.putText(bar, text, (6, 18 + 20 * i), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, canvas], axis=0)


def side_by_side(panels: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Panels in one row on a white background, top-aligned (the comparison sheet)."""
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    sheet = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for panel in panels:
        sheet[: panel.shape[0], x : x + panel.shape[1]] = panel
        x += panel.shape[1] + gap
    return sheet


def legend_text(strides: Sequence[int]) -> str:
    """How to read the markers, for the JSON and the command's output."""
    shapes = {8: "dot", 16: "square"}
    return ", ".join(f"stride {s}: {shapes.get(s, 'diamond')}" for s in strides)
