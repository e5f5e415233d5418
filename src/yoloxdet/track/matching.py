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
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.maximum(inter_w, 0.0) * np.maximum(inter_h, 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)  # 0 where boxes do not overlap


def iou_cost(tracks_tlbr: np.ndarray, detections_tlbr: np.ndarray) -> np.ndarray:
    """``1 - IoU``: ``[T, D]``."""
    return 1.0 - iou_matrix(tracks_tlbr, detections_tlbr)


def fuse_score(cost: np.ndarray, detection_scores: np.ndarray) -> np.ndarray:
    """``1 - IoU * score``: a confident detection is cheaper to match than a doubtful one at the same IoU."""
    if cost.size == 0:
        return cost
    return 1.0 - (1.0 - cost) * np.asarray(detection_scores, dtype=np.float64)[None, :]


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
    matches = np.stack([matched, row_to_col[matched]], axis=1).astype(np.int64)
    return matches, np.flatnonzero(row_to_col < 0), np.flatnonzero(col_to_row < 0)
