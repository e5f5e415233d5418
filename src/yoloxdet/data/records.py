"""Format-independent annotation records and the problems found while reading them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Issue:
    """One problem in a dataset. ``where`` is a line, an annotation id or an object index; ``severity`` is
    "error" (the box or image is dropped) or "warning" (kept, but worth a look)."""

    path: Path
    message: str
    where: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        loc = f"{self.path}:{self.where}" if self.where else str(self.path)
        return f"{self.severity}: {loc}: {self.message}"


@dataclass
class Record:
    """One image and its usable boxes, in original pixels (``[x1, y1, x2, y2]``, 0-based, float32)."""

    path: Path
    image_id: int
    width: int
    height: int
    boxes_xyxy: np.ndarray  # [N, 4] float32
    labels: np.ndarray  # [N] int64, contiguous class index
    label_file: Path | None = None  # the annotation file for per-image formats, for messages
    extra: dict = field(default_factory=dict)


def empty_boxes() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)


def box_problem(box: tuple[float, float, float, float]) -> str | None:
    """Why an ``[x1, y1, x2, y2]`` box is unusable, or None.

    Boxes are dropped when NaN/inf or of zero or negative size; boxes reaching outside the image are
    reported by the caller as a warning and clipped (the official COCO loader clips too).
    """
    x1, y1, x2, y2 = box
    if not all(np.isfinite(v) for v in box):
        return f"box {list(box)} has NaN or infinite coordinates"
    if x2 <= x1 or y2 <= y1:
        return f"box {[round(v, 2) for v in box]} has zero or negative size"
    return None


def is_outside(box: tuple[float, float, float, float], width: float, height: float, tol: float = 1.0) -> bool:
    x1, y1, x2, y2 = box
    return x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol


def clip_box(box: tuple[float, float, float, float], width: float, height: float) -> tuple[float, ...]:
    x1, y1, x2, y2 = box
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )
