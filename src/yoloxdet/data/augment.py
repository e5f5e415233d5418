"""The official YOLOX augmentations (reference §4, §4.5, current HEAD semantics) as pure numpy/cv2 functions.

Every function takes its randomness from an explicit ``numpy.random.Generator`` (or takes the drawn values as
arguments), returns new arrays and mutates nothing it was given. Boxes are ``[N, 4]`` float32 xyxy pixels.
Unlike the official ``TrainTransform`` there is no cap on boxes per image (official pads to 50/120 and
silently drops the rest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from yoloxdet.config import AugmentConfig
from yoloxdet.data.transforms import PAD_VALUE, letterbox

HSV_GAINS = AugmentConfig.hsv_gains  # official augment_hsv(hgain=5, sgain=30, vgain=30)
MIN_BOX_SIDE = 1.0  # TrainTransform keeps boxes with min(w, h) > 1 (input pixels)


@dataclass(frozen=True)
class ResolvedAugment:
    """Augmentation with every model default filled in (see :func:`resolve_augment`)."""

    mosaic_prob: float = 1.0
    mixup_prob: float = 1.0
    enable_mixup: bool = True
    hsv_prob: float = 1.0
    hsv_gains: tuple[int, int, int] = HSV_GAINS
    flip_prob: float = 0.5
    degrees: float = 10.0
    translate: float = 0.1
    mosaic_scale: tuple[float, float] = (0.1, 2.0)
    mixup_scale: tuple[float, float] = (0.5, 1.5)
    shear: float = 2.0
    vflip_prob: float = 0.0
    rot90_prob: float = 0.0


def resolve_augment(
    config: AugmentConfig, *, mosaic_prob: float, enable_mixup: bool, mosaic_scale: tuple[float, float]
) -> ResolvedAugment:
    """Fill ``None`` fields of ``config`` with the model's defaults, passed as plain values (from
    ``ModelSpec``), so ``data`` never imports ``models``."""
    return ResolvedAugment(
        mosaic_prob=mosaic_prob if config.mosaic_prob is None else config.mosaic_prob,
        mixup_prob=config.mixup_prob,
        enable_mixup=enable_mixup if config.enable_mixup is None else config.enable_mixup,
        hsv_prob=config.hsv_prob,
        hsv_gains=tuple(config.hsv_gains),
        flip_prob=config.flip_prob,
        degrees=config.degrees,
        translate=config.translate,
        mosaic_scale=tuple(mosaic_scale if config.mosaic_scale is None else config.mosaic_scale),
        mixup_scale=tuple(config.mixup_scale),
        shear=config.shear,
        vflip_prob=config.vflip_prob,
        rot90_prob=config.rot90_prob,
    )


# ---------------------------------------------------------------- affine
@dataclass(frozen=True)
class AffineParams:
    angle: float  # degrees, counter-clockwise as cv2.getRotationMatrix2D
    scale: float
    shear_x: float  # degrees
    shear_y: float  # degrees
    translate_x: float  # fraction of the output width
    translate_y: float  # fraction of the output height


def sample_affine(rng: np.random.Generator, aug: ResolvedAugment) -> AffineParams:
    """Draw as official ``get_affine_matrix``: angle U(±degrees), scale U(mosaic_scale), shears U(±shear),
    translations U(±translate)."""
    angle = rng.uniform(-aug.degrees, aug.degrees)
    scale = rng.uniform(*aug.mosaic_scale)
    shear_x = rng.uniform(-aug.shear, aug.shear)
    shear_y = rng.uniform(-aug.shear, aug.shear)
    tx = rng.uniform(-aug.translate, aug.translate)
    ty = rng.uniform(-aug.translate, aug.translate)
    return AffineParams(angle, scale, shear_x, shear_y, tx, ty)


def affine_matrix(params: AffineParams, size_wh: tuple[int, int]) -> np.ndarray:
    """[2, 3] float64: rotation+scale about (0, 0), then shear mixing the rows, then translation in pixels."""
    if params.scale <= 0:
        raise ValueError(f"affine scale must be positive, got {params.scale}")
    a = params.scale * math.cos(math.radians(params.angle))
    b = params.scale * math.sin(math.radians(params.angle))
    rot = np.array([[a, b, 0.0], [-b, a, 0.0]])  # cv2.getRotationMatrix2D(center=(0, 0))
    tan_x = math.tan(math.radians(params.shear_x))
    tan_y = math.tan(math.radians(params.shear_y))
    matrix = np.empty((2, 3))
    matrix[0] = rot[0] + tan_y * rot[1]
    matrix[1] = rot[1] + tan_x * rot[0]
    matrix[0, 2] = params.translate_x * size_wh[0]
    matrix[1, 2] = params.translate_y * size_wh[1]
    return matrix


def warp_boxes(boxes_xyxy: np.ndarray, matrix: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Map the 4 corners of each box, take their min/max, clip to ``[0, W] x [0, H]``."""
    if len(boxes_xyxy) == 0:
        return boxes_xyxy.astype(np.float32, copy=True)
    corners = boxes_xyxy[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(-1, 2).astype(np.float64)  # x1y1 x2y2 x1y2 x2y1
    mapped = (corners @ matrix[:, :2].T + matrix[:, 2]).reshape(-1, 4, 2)
    out = np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1)
    out[:, 0::2] = out[:, 0::2].clip(0, size_wh[0])
    out[:, 1::2] = out[:, 1::2].clip(0, size_wh[1])
    return out.astype(np.float32)


def apply_affine(
    image: np.ndarray, boxes_xyxy: np.ndarray, matrix: np.ndarray, size_wh: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Warp into the top-left ``size_wh`` window (official HEAD), border 114; boxes follow and are clipped."""
    warped = cv2.warpAffine(image, matrix, dsize=size_wh, borderValue=(PAD_VALUE,) * 3)
    return warped, warp_boxes(boxes_xyxy, matrix, size_wh)


# ---------------------------------------------------------------- photometric and flip
def hsv_offsets(rng: np.random.Generator, gains: tuple[int, int, int] = HSV_GAINS) -> np.ndarray:
    """Additive (h, s, v) offsets: U(-1, 1) * gain, each kept with probability 0.5, truncated to int."""
    offsets = rng.uniform(-1, 1, 3) * np.asarray(gains) * rng.integers(0, 2, 3)
    return offsets.astype(np.int16)


def apply_hsv(image: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """H += dh mod 180, S and V += ds, dv clipped to 0..255; one per-channel LUT instead of int16
    arithmetic."""
    values = np.arange(256, dtype=np.int16)
    lut = (
        np.stack(
            [
                (values + offsets[0]) % 180,
                np.clip(values + offsets[1], 0, 255),
                np.clip(values + offsets[2], 0, 255),
            ],
            axis=1,
        )
        .astype(np.uint8)
        .reshape(256, 1, 3)
    )
    hsv = cv2.LUT(cv2.cvtColor(image, cv2.COLOR_BGR2HSV), lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _mirror(image: np.ndarray, boxes_xyxy: np.ndarray, vertical: bool) -> tuple[np.ndarray, np.ndarray]:
    extent = image.shape[0 if vertical else 1]
    low, high = (1, 3) if vertical else (0, 2)
    flipped = boxes_xyxy.copy()
    flipped[:, low] = extent - boxes_xyxy[:, high]
    flipped[:, high] = extent - boxes_xyxy[:, low]
    return cv2.flip(image, 0 if vertical else 1), flipped


def hflip(image: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror horizontally: ``x1' = W - x2``, ``x2' = W - x1``."""
    return _mirror(image, boxes_xyxy, vertical=False)


def vflip(image: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror vertically: ``y1' = H - y2``, ``y2' = H - y1``."""
    return _mirror(image, boxes_xyxy, vertical=True)


def rot90(image: np.ndarray, boxes_xyxy: np.ndarray, turns: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise by ``turns`` x 90 degrees; a point (x, y) goes to (y, W - x) per turn."""
    for _ in range(turns % 4):
        width = image.shape[1]
        image = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
        x1, y1, x2, y2 = boxes_xyxy.T
        boxes_xyxy = np.stack([y1, width - x2, y2, width - x1], axis=1).astype(np.float32)
    return image, boxes_xyxy


def overhead_views(
    image: np.ndarray, boxes_xyxy: np.ndarray, rng: np.random.Generator, vflip_prob: float, rot90_prob: float
) -> tuple[np.ndarray, np.ndarray]:
    """Not official: vertical flip (p) and a random quarter turn (p), for imagery with no "up". Draws nothing
    from ``rng`` when both probabilities are 0, so the official random stream is unchanged."""
    if vflip_prob > 0 and rng.random() < vflip_prob:
        image, boxes_xyxy = vflip(image, boxes_xyxy)
    if rot90_prob > 0 and rng.random() < rot90_prob:
        image, boxes_xyxy = rot90(image, boxes_xyxy, int(rng.integers(1, 4)))
    return image, boxes_xyxy


def xyxy_to_cxcywh(boxes_xyxy: np.ndarray) -> np.ndarray:
    out = np.empty_like(boxes_xyxy)
    out[:, :2] = (boxes_xyxy[:, :2] + boxes_xyxy[:, 2:]) / 2
    out[:, 2:] = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]
    return out


@dataclass(frozen=True)
class TrainSample:
    image: np.ndarray  # [H, W, 3] uint8 BGR, input size
    boxes_cxcywh: np.ndarray  # [G, 4] float32, input pixels
    labels: np.ndarray  # [G] int64


def train_transform(
    image: np.ndarray,
    boxes_xyxy: np.ndarray,
    labels: np.ndarray,
    input_hw: tuple[int, int],
    rng: np.random.Generator,
    hsv_prob: float,
    flip_prob: float,
    vflip_prob: float = 0.0,
    rot90_prob: float = 0.0,
    hsv_gains: tuple[int, int, int] = HSV_GAINS,
) -> TrainSample:
    """Official ``TrainTransform``: HSV (p), flip (p), letterbox to ``input_hw``, keep boxes with min
    side > 1; the optional overhead views (:func:`overhead_views`) come after the flip.

    As official, an image without boxes gets no HSV or flip, and when no box survives the image falls back to
    the un-augmented one; unlike official the fallback also drops its degenerate boxes (min side <= 1).
    """
    if len(boxes_xyxy) == 0:
        canvas, _ = letterbox(image, input_hw)
        return TrainSample(canvas, np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))
    augmented, boxes = image, boxes_xyxy
    if rng.random() < hsv_prob:
        augmented = apply_hsv(augmented, hsv_offsets(rng, hsv_gains))
    if rng.random() < flip_prob:
        augmented, boxes = hflip(augmented, boxes)
    augmented, boxes = overhead_views(augmented, boxes, rng, vflip_prob, rot90_prob)
    sample = _fit(augmented, boxes, labels, input_hw)
    if len(sample.labels) == 0:
        sample = _fit(image, boxes_xyxy, labels, input_hw)
    return sample


def _fit(
    image: np.ndarray, boxes_xyxy: np.ndarray, labels: np.ndarray, input_hw: tuple[int, int]
) -> TrainSample:
    if image.shape[:2] == tuple(input_hw):
        canvas, ratio = image, 1.0  # the mosaic path: letterbox would be an identity copy
    else:
        canvas, ratio = letterbox(image, input_hw)
    boxes = xyxy_to_cxcywh(boxes_xyxy.astype(np.float32)) * np.float32(ratio)
    keep = np.minimum(boxes[:, 2], boxes[:, 3]) > MIN_BOX_SIDE
    return TrainSample(canvas, boxes[keep], labels[keep].astype(np.int64))
