"""Mosaic and MixUp (official ``MosaicDetection``, reference §4.5) and the whole training-sample recipe.

``make_train_sample`` is the one place that composes a training sample; it takes a ``load(index)`` callable
returning the official ``pull_item`` (image resized to fit the input, boxes scaled, labels), so it is independent
of the dataset class, the cache and the loader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def mosaic_tile(index: int, center_xy: tuple[int, int], tile_wh: tuple[int, int],
                input_hw: tuple[int, int]) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
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


def mosaic(tiles: Sequence[Loaded], center_xy: tuple[int, int], input_hw: tuple[int, int]) -> Loaded:
    """Paste 4 tiles around ``center_xy`` on a 2H x 2W canvas of 114; boxes shift and clip to the canvas."""
    canvas = np.full((2 * input_hw[0], 2 * input_hw[1], 3), PAD_VALUE, np.uint8)
    all_boxes, all_labels = [], []
    for i, (image, boxes, labels) in enumerate(tiles):
        image = resize_to_fit(image, input_hw)  # official re-fits the already fitted image (a no-op but for rounding)
        ratio = min(input_hw[0] / tiles[i][0].shape[0], input_hw[1] / tiles[i][0].shape[1])
        h, w = image.shape[:2]
        (dx1, dy1, dx2, dy2), (sx1, sy1, sx2, sy2) = mosaic_tile(i, center_xy, (w, h), input_hw)
        canvas[dy1:dy2, dx1:dx2] = image[sy1:sy2, sx1:sx2]
        shifted = boxes * np.float32(ratio) + np.array([dx1 - sx1, dy1 - sy1] * 2, np.float32)
        all_boxes.append(shifted)
        all_labels.append(labels)
    boxes = np.concatenate(all_boxes).astype(np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, 2 * input_hw[1])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, 2 * input_hw[0])
    return canvas, boxes, np.concatenate(all_labels).astype(np.int64)


def mixup(base: Loaded, other: Loaded, rng: np.random.Generator, scale_range: tuple[float, float]) -> Loaded:
    """Official MixUp: letterbox ``other`` into the base size, rescale by U(scale_range), flip with p 0.5, crop
    a random base-sized window of its zero-padded canvas, and blend ``0.5 a + 0.5 b`` (truncated to uint8)."""
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
    padded = np.zeros((max(jh, target_h), max(jw, target_w), 3), np.uint8)
    padded[:jh, :jw] = jittered
    y_off = int(rng.integers(0, padded.shape[0] - target_h)) if padded.shape[0] > target_h else 0
    x_off = int(rng.integers(0, padded.shape[1] - target_w)) if padded.shape[1] > target_w else 0
    window = padded[y_off: y_off + target_h, x_off: x_off + target_w]

    moved = other_boxes.astype(np.float32) * np.float32(ratio)
    moved[:, 0::2] = moved[:, 0::2].clip(0, jw)
    moved[:, 1::2] = moved[:, 1::2].clip(0, jh)
    if flip:
        moved[:, [0, 2]] = jw - moved[:, [2, 0]]
    moved[:, 0::2] = (moved[:, 0::2] - x_off).clip(0, target_w)
    moved[:, 1::2] = (moved[:, 1::2] - y_off).clip(0, target_h)
    # floor((a + b) / 2) == uint8(0.5 a + 0.5 b) exactly, without a float copy of both images
    blended = ((image.astype(np.uint16) + window) >> 1).astype(np.uint8)
    return blended, np.concatenate([boxes, moved]), np.concatenate([labels, other_labels]).astype(np.int64)


def make_train_sample(index: int, load: LoadFn, num_images: int, mixup_pool: Sequence[int],
                      input_hw: tuple[int, int], aug: ResolvedAugment, rng: np.random.Generator,
                      mosaic_enabled: bool) -> TrainSample:
    """One training sample, official order: [mosaic -> random affine -> mixup] (p = mosaic_prob, only in the
    mosaic phase) -> TrainTransform (HSV, flip, letterbox, drop boxes with min side <= 1).

    Args:
        load: index -> official ``pull_item`` (image fitted to ``input_hw``, boxes scaled, labels).
        mixup_pool: indices of images with boxes (MixUp draws from them).
    """
    if mosaic_enabled and rng.random() < aug.mosaic_prob:
        yc = int(rng.uniform(0.5 * input_hw[0], 1.5 * input_hw[0]))
        xc = int(rng.uniform(0.5 * input_hw[1], 1.5 * input_hw[1]))
        indices = [index, *rng.integers(0, num_images, 3).tolist()]
        canvas, boxes, labels = mosaic([load(i) for i in indices], (xc, yc), input_hw)
        size_wh = (input_hw[1], input_hw[0])
        image, boxes = apply_affine(canvas, boxes, affine_matrix(sample_affine(rng, aug), size_wh), size_wh)
        if aug.enable_mixup and len(boxes) and len(mixup_pool) and rng.random() < aug.mixup_prob:
            other = load(int(mixup_pool[rng.integers(0, len(mixup_pool))]))
            image, boxes, labels = mixup((image, boxes, labels), other, rng, aug.mixup_scale)
    else:
        image, boxes, labels = load(index)
    return train_transform(image, boxes, labels, input_hw, rng, aug.hsv_prob, aug.flip_prob)
