"""Detection on images larger than the model input: overlapping tiles, mapped back and merged.

A 10,000 px aerial image letterboxed to 416 px shrinks a 40 px tree crown to under 2 px; cutting the image
into model-size tiles keeps objects at the scale the model was trained on. How the pieces fit:

- Tiles of ``size`` px with ``overlap`` (a fraction of the tile) between neighbours; the last row and column
  sit flush with the image edge, so every tile is full-size when the image is at least one tile wide.
- An object no larger than the overlap lies wholly inside at least one tile. A box touching a tile edge that
  is *inside* the image is a cut-off piece of an object, so it is dropped; the tile that holds the whole
  object reports it.
- Duplicates (an object wholly inside two overlapping tiles) are merged by the detector's own NMS (class-aware
  unless the detector is class-agnostic), keeping the higher score.
- Objects larger than the overlap may be cut in every tile. A whole-image pass at model size (``full_pass``)
  finds those: its boxes whose longer side exceeds the overlap are added unless they overlap a tile's box (IoU
  above the NMS threshold). Tile boxes win because the tiles see the object at full resolution; the full
  pass's smaller boxes (objects shrunk to a few pixels) are not used.

Memory stays bounded: tiles are views into the decoded image, run ``detector.batch_size`` at a time, and only
the boxes are kept. A tile that covers the whole image is the plain untiled prediction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torchvision

from ..config import PredictConfig
from .results import Detections

# A box edge within this many pixels of an interior tile edge counts as cut by it.
EDGE_MARGIN_PX = 2.0


@dataclass(frozen=True)
class TileSpec:
    """How to cut an image: ``size`` px square tiles overlapping by ``overlap`` of a tile; ``full_pass`` adds
    a whole-image pass at model size for objects larger than the overlap."""

    size: int = 416
    overlap: float = PredictConfig.tile_overlap
    full_pass: bool = True

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"tile size must be at least 32 px, got {self.size}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"tile overlap must be in [0, 1), got {self.overlap}")

    @property
    def overlap_px(self) -> int:
        return round(self.size * self.overlap)

    @property
    def stride(self) -> int:
        return self.size - self.overlap_px


class BatchDetector(Protocol):
    """What tiling needs from a detector (:class:`yoloxdet.Detector` is one): a forward pass over a batch of
    images as given, and the settings that merging reuses."""

    batch_size: int
    nms_iou_threshold: float
    class_agnostic: bool

    @property
    def names(self) -> tuple[str, ...]: ...

    def predict_batch(self, images_bgr: Sequence[np.ndarray], *, clip: bool = True) -> list[Detections]: ...


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` px every ``stride`` px, the last flush to the
    end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def tile_windows(height: int, width: int, spec: TileSpec) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of every tile, row-major."""
    return [
        (x0, y0, min(x0 + spec.size, width), min(y0 + spec.size, height))
        for y0 in tile_origins(height, spec.size, spec.stride)
        for x0 in tile_origins(width, spec.size, spec.stride)
    ]


def _uncut(xyxy: np.ndarray, window: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """Mask of boxes that touch no tile edge lying inside the image (image borders do not cut objects)."""
    x0, y0, x1, y1 = window
    keep = np.ones(len(xyxy), dtype=bool)
    if x0 > 0:
        keep &= xyxy[:, 0] > x0 + EDGE_MARGIN_PX
    if y0 > 0:
        keep &= xyxy[:, 1] > y0 + EDGE_MARGIN_PX
    if x1 < width:
        keep &= xyxy[:, 2] < x1 - EDGE_MARGIN_PX
    if y1 < height:
        keep &= xyxy[:, 3] < y1 - EDGE_MARGIN_PX
    return keep


def _batches(image: np.ndarray, windows: list[tuple[int, int, int, int]], batch_size: int) -> Iterator[list]:
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        yield chunk, [image[y0:y1, x0:x1] for x0, y0, x1, y1 in chunk]  # views: no copy of the image


def predict_tiled(
    detector: BatchDetector,
    image_bgr: np.ndarray,
    spec: TileSpec,
    *,
    image_path: Path | None = None,
    frame_index: int | None = None,
    clip: bool = True,
    keep_image: bool = False,
) -> Detections:
    """Detections of one ``[H, W, 3]`` uint8 BGR image of any size, in its own pixels (see the module
    docstring)."""
    height, width = image_bgr.shape[:2]
    windows = tile_windows(height, width, spec)
    if len(windows) == 1:
        [dets] = detector.predict_batch([image_bgr], clip=clip)
        return replace(
            dets, image_path=image_path, frame_index=frame_index, image=image_bgr if keep_image else None
        )

    boxes, scores, classes = [], [], []
    for chunk, crops in _batches(image_bgr, windows, detector.batch_size):
        # Tiles are clipped to themselves: a box reaching past a tile's edge is a cut one either way.
        for window, dets in zip(chunk, detector.predict_batch(crops, clip=True)):
            xyxy = dets.xyxy + np.array(window[:2] * 2, dtype=np.float32)
            keep = _uncut(xyxy, window, height, width)
            boxes.append(xyxy[keep])
            scores.append(dets.scores[keep])
            classes.append(dets.class_ids[keep])
    xyxy, score, class_ids = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
    kept = _nms(xyxy, score, class_ids, detector.nms_iou_threshold, detector.class_agnostic)
    xyxy, score, class_ids = xyxy[kept], score[kept], class_ids[kept]
    if spec.full_pass:
        [whole] = detector.predict_batch([image_bgr], clip=clip)
        sides = np.maximum(whole.xyxy[:, 2] - whole.xyxy[:, 0], whole.xyxy[:, 3] - whole.xyxy[:, 1])
        new = (sides > spec.overlap_px) & ~_overlaps(
            whole.xyxy, whole.class_ids, xyxy, class_ids, detector.nms_iou_threshold, detector.class_agnostic
        )
        order = np.argsort(-np.concatenate([score, whole.scores[new]]), kind="stable")
        xyxy = np.concatenate([xyxy, whole.xyxy[new]])[order]
        score = np.concatenate([score, whole.scores[new]])[order]
        class_ids = np.concatenate([class_ids, whole.class_ids[new]])[order]
    return Detections(
        xyxy=xyxy,
        scores=score,
        class_ids=class_ids,
        names=detector.names,
        orig_shape=(height, width),
        image_path=image_path,
        frame_index=frame_index,
        image=image_bgr if keep_image else None,
    )


def _nms(
    xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, class_agnostic: bool
) -> np.ndarray:
    """Indices kept by NMS across tiles, highest score first."""
    boxes, score = torch.from_numpy(xyxy).float(), torch.from_numpy(scores).float()
    if class_agnostic:
        kept = torchvision.ops.nms(boxes, score, iou)
    else:
        kept = torchvision.ops.batched_nms(boxes, score, torch.from_numpy(class_ids), iou)
    return kept.numpy()


def _overlaps(
    xyxy: np.ndarray,
    class_ids: np.ndarray,
    kept_xyxy: np.ndarray,
    kept_ids: np.ndarray,
    iou: float,
    class_agnostic: bool,
) -> np.ndarray:
    """Mask of boxes overlapping a kept box (of the same class unless class-agnostic) by more than ``iou``."""
    if len(xyxy) == 0 or len(kept_xyxy) == 0:
        return np.zeros(len(xyxy), dtype=bool)
    overlap = torchvision.ops.box_iou(
        torch.from_numpy(xyxy).float(), torch.from_numpy(kept_xyxy).float()
    ).numpy()
    if not class_agnostic:
        overlap = overlap * (class_ids[:, None] == kept_ids[None, :])
    return (overlap > iou).any(axis=1)
