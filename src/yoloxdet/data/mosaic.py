"""Mosaic and MixUp (official ``MosaicDetection``, reference §4.5) and the whole training-sample recipe.

``make_train_sample`` is the one place that composes a training sample; it takes a ``load(index)`` callable
returning the official ``pull_item`` (image resized to fit the input, boxes scaled, labels), so it is
independent of the dataset class, the cache and the loader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from yoloxdet.data.augment import (
    ResolvedAugment,
    TrainSample,
    affine_matrix,
    apply_affine,
    sample_affine,
    train_transform,
)
from yoloxdet.data.datasets import resize_to_fit
from yoloxdet.data.transforms import PAD_VALUE

Loaded = tuple[np.ndarray, np.ndarray, np.ndarray]  # image [h, w, 3] uint8, boxes_xyxy [N, 4], labels [N]
LoadFn = Callable[[int], Loaded]


def mosaic_tile(
    index: int, center_xy: tuple[int, int], tile_wh: tuple[int, int], input_hw: tuple[int, int]
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Where tile ``index`` (0 TL, 1 TR, 2 BL, 3 BR) goes on the 2H x 2W canvas around the centre.

    Returns the canvas rectangle and the matching rectangle of the tile, both ``(x1, y1, x2, y2)``.
    """
    xc, yc = center_xy
    w, h = tile_wh
    big_h, big_w = 2 * input_hw[0], 2 * input_hw[1]
    if index == 0:
        dst = (max(xc - w, 0), max(yc - h, 0), xc, yc)
        src = (w - (dst[2] - dst[0]), h - (dst[3] - dst[1]), w, h)
    elif index == 1:
        dst = (xc, max(yc - h, 0), min(xc + w, big_w), yc)
        src = (0, h - (dst[3] - dst[1]), min(w, dst[2] - dst[0]), h)
    elif index == 2:
        dst = (max(xc - w, 0), yc, xc, min(big_h, yc + h))
        src = (w - (dst[2] - dst[0]), 0, w, min(dst[3] - dst[1], h))
    else:
        dst = (xc, yc, min(xc + w, big_w), min(big_h, yc + h))
        src = (0, 0, min(w, dst[2] - dst[0]), min(dst[3] - dst[1], h))
    return dst, src


@dataclass(frozen=True)
class Tile:
    """A mosaic tile whose pixels are decoded only when some of them can be seen after the affine warp.

    ``size_wh`` is the size of the fitted image (the official ``pull_item``); ``load`` returns the fitted
    image with its boxes and labels (which win over the predicted ones, e.g. when a bad file was substituted).
    """

    size_wh: tuple[int, int]
    boxes_xyxy: np.ndarray
    labels: np.ndarray
    load: Callable[[], Loaded]

    @staticmethod
    def of(loaded: Loaded) -> Tile:
        image, boxes, labels = loaded
        return Tile((image.shape[1], image.shape[0]), boxes, labels, lambda: loaded)


def _refit_size(size_wh: tuple[int, int], input_hw: tuple[int, int]) -> tuple[tuple[int, int], float]:
    w, h = size_wh
    ratio = min(input_hw[0] / h, input_hw[1] / w)
    return (int(w * ratio), int(h * ratio)), ratio


def visible_region(matrix: np.ndarray, size_wh: tuple[int, int], margin: float = 2.0) -> tuple[float, ...]:
    """Axis-aligned bounds of the source pixels ``cv2.warpAffine(matrix, dsize=size_wh)`` can sample
    (the output window mapped back, grown by ``margin`` for bilinear neighbours)."""
    inverse = cv2.invertAffineTransform(matrix)
    w, h = size_wh
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ inverse.T
    (x1, y1), (x2, y2) = corners.min(axis=0), corners.max(axis=0)
    return x1 - margin, y1 - margin, x2 + margin, y2 + margin


def mosaic(
    tiles: Sequence[Tile | Loaded],
    center_xy: tuple[int, int],
    input_hw: tuple[int, int],
    visible_xyxy: tuple[float, ...] | None = None,
) -> Loaded:
    """Paste 4 tiles around ``center_xy`` on a 2H x 2W canvas of 114; boxes shift and clip to the canvas.

    Tiles entirely outside ``visible_xyxy`` (see :func:`visible_region`) are not decoded: their pixels could
    not reach the output, so the result after the warp is identical, and their boxes are still placed.
    """
    canvas = np.full((2 * input_hw[0], 2 * input_hw[1], 3), PAD_VALUE, np.uint8)
    all_boxes, all_labels = [], []
    for i, tile in enumerate(tiles):
        tile = tile if isinstance(tile, Tile) else Tile.of(tile)
        size_wh, boxes, labels = tile.size_wh, tile.boxes_xyxy, tile.labels
        (dx1, dy1, dx2, dy2), _ = mosaic_tile(i, center_xy, _refit_size(size_wh, input_hw)[0], input_hw)
        seen = visible_xyxy is None or (
            dx1 < visible_xyxy[2]
            and dx2 > visible_xyxy[0]
            and dy1 < visible_xyxy[3]
            and dy2 > visible_xyxy[1]
        )
        image = None
        if seen:
            image, boxes, labels = tile.load()
            size_wh = (image.shape[1], image.shape[0])
        refit_wh, ratio = _refit_size(size_wh, input_hw)
        (dx1, dy1, dx2, dy2), (sx1, sy1, sx2, sy2) = mosaic_tile(i, center_xy, refit_wh, input_hw)
        if image is not None:
            # official re-fits the already fitted image: a no-op except for rounding
            canvas[dy1:dy2, dx1:dx2] = resize_to_fit(image, input_hw)[sy1:sy2, sx1:sx2]
        all_boxes.append(boxes * np.float32(ratio) + np.array([dx1 - sx1, dy1 - sy1] * 2, np.float32))
        all_labels.append(labels)
    boxes = np.concatenate(all_boxes).astype(np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, 2 * input_hw[1])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, 2 * input_hw[0])
    return canvas, boxes, np.concatenate(all_labels).astype(np.int64)


def mixup(base: Loaded, other: Loaded, rng: np.random.Generator, scale_range: tuple[float, float]) -> Loaded:
    """Official MixUp: letterbox ``other`` into the base size, rescale by U(scale_range), flip with p 0.5,
    crop a random base-sized window of its zero-padded canvas, and blend ``0.5 a + 0.5 b`` (truncated to
    uint8)."""
    image, boxes, labels = base
    target_h, target_w = image.shape[:2]
    jitter = rng.uniform(*scale_range)
    flip = rng.uniform(0, 1) > 0.5
    other_image, other_boxes, other_labels = other
    fit = resize_to_fit(other_image, (target_h, target_w))
    ratio = min(target_h / other_image.shape[0], target_w / other_image.shape[1])
    letterboxed = np.full((target_h, target_w, 3), PAD_VALUE, np.uint8)
    letterboxed[: fit.shape[0], : fit.shape[1]] = fit
    jittered = cv2.resize(letterboxed, (int(target_w * jitter), int(target_h * jitter)))
    ratio *= jitter
    if flip:
        jittered = cv2.flip(jittered, 1)
    jh, jw = jittered.shape[:2]
    # official pads with zeros to at least the base size and crops a random base-sized window
    y_off = int(rng.integers(0, jh - target_h)) if jh > target_h else 0
    x_off = int(rng.integers(0, jw - target_w)) if jw > target_w else 0
    crop = jittered[y_off : y_off + target_h, x_off : x_off + target_w]
    if crop.shape[:2] == (target_h, target_w):
        window = crop
    else:
        window = np.zeros_like(image)
        window[: crop.shape[0], : crop.shape[1]] = crop

    moved = other_boxes.astype(np.float32) * np.float32(ratio)
    moved[:, 0::2] = moved[:, 0::2].clip(0, jw)
    moved[:, 1::2] = moved[:, 1::2].clip(0, jh)
    if flip:
        moved[:, [0, 2]] = jw - moved[:, [2, 0]]
    moved[:, 0::2] = (moved[:, 0::2] - x_off).clip(0, target_w)
    moved[:, 1::2] = (moved[:, 1::2] - y_off).clip(0, target_h)
    # floor((a + b) / 2), which equals official uint8(0.5 a + 0.5 b), in uint8 without float copies
    blended = image >> 1
    blended += window >> 1
    odd = image & window
    odd &= 1
    blended += odd
    return blended, np.concatenate([boxes, moved]), np.concatenate([labels, other_labels]).astype(np.int64)


def make_train_sample(
    index: int,
    load: LoadFn,
    num_images: int,
    mixup_pool: Sequence[int],
    input_hw: tuple[int, int],
    aug: ResolvedAugment,
    rng: np.random.Generator,
    mosaic_enabled: bool,
    peek: Callable[[int], Tile] | None = None,
) -> TrainSample:
    """One training sample, official order: [mosaic -> random affine -> mixup] (p = mosaic_prob, only in the
    mosaic phase) -> TrainTransform (HSV, flip, letterbox, drop boxes with min side <= 1).

    Args:
        load: index -> official ``pull_item`` (image fitted to ``input_hw``, boxes scaled, labels).
        mixup_pool: indices of images with boxes (MixUp draws from them).
        peek: index -> :class:`Tile` from the annotations alone, so that mosaic tiles nobody can see are
            never decoded (optional; the result is the same).
    """
    if mosaic_enabled and rng.random() < aug.mosaic_prob:
        yc = int(rng.uniform(0.5 * input_hw[0], 1.5 * input_hw[0]))
        xc = int(rng.uniform(0.5 * input_hw[1], 1.5 * input_hw[1]))
        indices = [index, *rng.integers(0, num_images, 3).tolist()]
        size_wh = (input_hw[1], input_hw[0])
        matrix = affine_matrix(sample_affine(rng, aug), size_wh)  # drawn after the tiles, as official
        tiles = [peek(i) if peek is not None else Tile.of(load(i)) for i in indices]
        canvas, boxes, labels = mosaic(tiles, (xc, yc), input_hw, visible_region(matrix, size_wh))
        image, boxes = apply_affine(canvas, boxes, matrix, size_wh)
        if aug.enable_mixup and len(boxes) and len(mixup_pool) and rng.random() < aug.mixup_prob:
            other = load(int(mixup_pool[rng.integers(0, len(mixup_pool))]))
            image, boxes, labels = mixup((image, boxes, labels), other, rng, aug.mixup_scale)
    else:
        image, boxes, labels = load(index)
    return train_transform(
        image,
        boxes,
        labels,
        input_hw,
        rng,
        aug.hsv_prob,
        aug.flip_prob,
        aug.vflip_prob,
        aug.rot90_prob,
        hsv_gains=aug.hsv_gains,
    )
