"""Association costs and the assignment with a cost limit, as ByteTrack computes them.

- IoU uses the inclusive-pixel convention of ``cython_bbox.bbox_overlaps`` that the official tracker calls
  (width = x2 - x1 + 1), in float64; it differs from the detector's IoU (``ops.boxes``), and must, for the
  tracker to make the official decisions.
- The first association fuses the detection score into the cost: ``1 - IoU * score`` (the official default; it
  switches this off only for MOT20).
- Assignment is ``lap.lapjv`` with ``extend_cost=True, cost_limit=thresh``: an exact solver of the problem
  where leaving a track or a detection unmatched costs ``thresh / 2``, so no pair above the limit is ever
  matched and the matches that remain are optimal among those allowed. Solving without the limit and dropping
  pairs over it afterwards (what scipy-based ports do) is a different problem: one expensive pair can displace
  cheaper ones. See docs/tracking.md for the measured comparison.
"""

from __future__ import annotations

import lap
import numpy as np


def iou_matrix(boxes_a_tlbr: np.ndarray, boxes_b_tlbr: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``[N, M]`` of ``[N, 4]`` and ``[M, 4]`` boxes (x1, y1, x2, y2), inclusive pixels."""
    a = np.asarray(boxes_a_tlbr, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b_tlbr, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = (a[:, i : i + 1] for i in range(4))  # [N, 1] columns against [M] rows
    bx1, by1, bx2, by2 = b.T
    # in place, sparing [N, M] temporaries: at a hundred tracks the tracker's largest array work
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    inter += 1
    np.maximum(inter, 0.0, out=inter)
    inter_h = np.minimum(ay2, by2)
    inter_h -= np.maximum(ay1, by1)
    inter_h += 1
    np.maximum(inter_h, 0.0, out=inter_h)
    inter *= inter_h
    union = (ax2 - ax1 + 1) * (ay2 - ay1 + 1) + (bx2 - bx1 + 1) * (by2 - by1 + 1)
    union -= inter
    return np.divide(inter, union, out=inter, where=inter > 0)  # 0 where boxes do not overlap


def iou_cost(tracks_tlbr: np.ndarray, detections_tlbr: np.ndarray) -> np.ndarray:
    """``1 - IoU``: ``[T, D]``."""
    iou = iou_matrix(tracks_tlbr, detections_tlbr)
    return np.subtract(1.0, iou, out=iou)


def fuse_score(cost: np.ndarray, detection_scores: np.ndarray) -> np.ndarray:
    """``1 - IoU * score``: a confident detection is cheaper to match than a doubtful one at the same IoU."""
    if cost.size == 0:
        return cost
    similarity = 1.0 - cost
    similarity *= np.asarray(detection_scores, dtype=np.float64)[None, :]
    return np.subtract(1.0, similarity, out=similarity)


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching in which no pair costs more than ``thresh``.

    Returns:
        matches ``[K, 2]`` (row, column), unmatched rows ``[R]``, unmatched columns ``[C]``, all int64 arrays.
    """
    rows, cols = cost.shape
    if cost.size == 0:
        return np.empty((0, 2), dtype=np.int64), np.arange(rows), np.arange(cols)
    _, row_to_col, col_to_row = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    matched = np.flatnonzero(row_to_col >= 0)
    matches = np.empty((len(matched), 2), dtype=np.int64)
    matches[:, 0], matches[:, 1] = matched, row_to_col[matched]
    return matches, np.flatnonzero(row_to_col < 0), np.flatnonzero(col_to_row < 0)
