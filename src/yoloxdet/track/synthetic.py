"""Generated tracking sequences with exact ground truth, made from real COCO objects.

:func:`make_sequence` cuts instances (with their polygon masks) out of COCO images and moves them over a
blurred COCO background along known straight paths: some cross each other, some pass behind others (depth
order fixed per object), some enter or leave through the image border. The ground truth is exact: every
object's full box and its visible fraction per frame. :func:`detections_from_gt` turns that into a
detector-like stream (box noise, misses, low scores under occlusion, a few false positives), and the rendered
frames can go through the real detector too. :func:`random_detection_stream` makes plain random streams for
the oracle test and the benchmark.

Everything is a function of a seed (``numpy.random.Generator``), so a sequence is reproduced exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .mot import MotRows, write_sequence


@dataclass(frozen=True)
class Sequence:
    """A rendered sequence: frames ``[T, H, W, 3]`` uint8 BGR, ground truth rows, frame rate."""

    frames: np.ndarray
    gt: MotRows
    frame_rate: int


@dataclass(frozen=True)
class _Sprite:
    patch: np.ndarray  # [h, w, 3] BGR
    mask: np.ndarray  # [h, w] bool


def load_sprites(coco_root: str | Path, *, min_size: int = 48, limit: int = 40) -> list[_Sprite]:
    """Instance crops with their polygon masks from a COCO-layout folder (``annotations/instances.json``)."""
    coco_root = Path(coco_root)
    data = json.loads((coco_root / "annotations" / "instances.json").read_text())
    files = {image["id"]: image["file_name"] for image in data["images"]}
    sprites: list[_Sprite] = []
    for ann in sorted(data["annotations"], key=lambda a: a["id"]):
        x, y, w, h = (round(v) for v in ann["bbox"])
        if ann.get("iscrowd") or not isinstance(ann["segmentation"], list) or min(w, h) < min_size:
            continue
        image = cv2.imread(str(coco_root / "images" / files[ann["image_id"]]))
        if image is None:
            continue
        mask = np.zeros(image.shape[:2], np.uint8)
        for polygon in ann["segmentation"]:
            cv2.fillPoly(mask, [np.asarray(polygon, np.float64).reshape(-1, 2).round().astype(np.int32)], 1)
        sprites.append(_Sprite(image[y : y + h, x : x + w].copy(), mask[y : y + h, x : x + w].astype(bool)))
        if len(sprites) == limit:
            break
    if not sprites:
        raise ValueError(f"{coco_root}: no instances of at least {min_size} px with polygon masks")
    return sprites


def _plan_paths(
    rng: np.random.Generator, num_objects: int, num_frames: int, size: tuple[int, int]
) -> list[tuple[int, int, np.ndarray, np.ndarray, float]]:
    """Per object: first frame, last frame, start centre, velocity, longest side (px). Pairs of objects are
    sent through a common point at a common time (crossings); others cross the border (enter/leave)."""
    height, width = size
    plans = []
    for index in range(num_objects):
        first = int(rng.integers(0, num_frames // 3)) if index % 3 else 0
        last = int(rng.integers(2 * num_frames // 3, num_frames)) if index % 4 == 1 else num_frames - 1
        scale = float(rng.uniform(80, 180))  # longest side in pixels
        if index % 2 == 1:  # meet the previous object at its position halfway through
            prev_first, prev_last, prev_start, prev_velocity, _ = plans[-1]
            meet_frame = (max(first, prev_first) + min(last, prev_last)) // 2
            meet = prev_start + prev_velocity * (meet_frame - prev_first)
            velocity = -prev_velocity[::-1] * rng.uniform(0.7, 1.3)  # a different direction
            start = meet - velocity * (meet_frame - first)
        else:
            start = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.2, 0.8) * height])
            speed = rng.uniform(2.0, 6.0)
            angle = rng.uniform(0, 2 * np.pi)
            velocity = speed * np.array([np.cos(angle), np.sin(angle)])
        plans.append((first, last, start, velocity, scale))
    return plans


def make_sequence(
    sprites: list[_Sprite],
    background: np.ndarray,
    *,
    num_objects: int = 8,
    num_frames: int = 60,
    size: tuple[int, int] = (480, 640),
    frame_rate: int = 30,
    seed: int = 0,
) -> Sequence:
    """Render ``num_frames`` frames of ``num_objects`` COCO objects moving over ``background``.

    Ground truth: one row per frame and object whose box overlaps the image; boxes are full (not clipped), as
    in MOTChallenge, with the visible fraction (occlusion by nearer objects and the border) in ``visibility``.
    """
    rng = np.random.default_rng(seed)
    height, width = size
    backdrop = cv2.GaussianBlur(cv2.resize(background, (width, height)), (0, 0), 8)
    chosen = [sprites[i] for i in rng.choice(len(sprites), num_objects, replace=len(sprites) < num_objects)]
    plans = _plan_paths(rng, num_objects, num_frames, size)
    depth = rng.permutation(num_objects)  # paint far (low) to near (high)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    rows = []
    for frame_index in range(num_frames):
        canvas = backdrop.copy()
        owner = np.full((height, width), -1, np.int32)  # which object is visible at each pixel
        boxes = {}
        for obj in np.argsort(depth):
            first, last, start, velocity, scale = plans[obj]
            if not first <= frame_index <= last:
                continue
            sprite = chosen[obj]
            h, w = (max(8, round(s * scale / max(sprite.patch.shape[:2]))) for s in sprite.patch.shape[:2])
            cx, cy = start + velocity * (frame_index - first)
            x1, y1 = round(cx - w / 2), round(cy - h / 2)
            if x1 >= width or y1 >= height or x1 + w <= 0 or y1 + h <= 0:
                continue
            patch = cv2.resize(sprite.patch, (w, h))
            mask = cv2.resize(sprite.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x1 + w, width), min(y1 + h, height)
            sub_mask = mask[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
            canvas[cy1:cy2, cx1:cx2][sub_mask] = patch[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1][sub_mask]
            owner[cy1:cy2, cx1:cx2][sub_mask] = obj
            boxes[obj] = (x1, y1, w, h, int(mask.sum()))
        frames[frame_index] = canvas
        visible = np.bincount(owner[owner >= 0], minlength=num_objects)
        for obj, (x1, y1, w, h, area) in boxes.items():
            rows.append((frame_index + 1, obj + 1, x1, y1, w, h, 1.0, 1, visible[obj] / max(area, 1)))
    return Sequence(frames, MotRows.from_rows(rows), frame_rate)


def detections_from_gt(
    gt: MotRows,
    *,
    seed: int = 0,
    size: tuple[int, int] = (480, 640),
    miss_rate: float = 0.05,
    box_noise: float = 0.03,
    occluded_below: float = 0.6,
    false_positives: float = 0.3,
) -> list[np.ndarray]:
    """A detector-like stream from ground truth: per frame an ``[N, 5]`` array (x1, y1, x2, y2, score).

    Visible objects get boxes with Gaussian noise (``box_noise`` x size) clipped to the image and a high
    score; partly hidden ones (visibility < ``occluded_below``) a low score in [0.15, 0.45), as real detectors
    give; objects under 10 % visible are missed, others with probability ``miss_rate``; on average
    ``false_positives`` random low-score boxes per frame.
    """
    rng = np.random.default_rng(seed)
    height, width = size
    stream = []
    for frame in range(1, int(gt.frames.max(initial=0)) + 1):
        rows = gt.select(gt.frames == frame)
        dets = []
        for (x1, y1, w, h), visibility in zip(rows.tlwh, rows.visibility):
            if visibility < 0.1 or rng.random() < miss_rate:
                continue
            noisy = np.array([x1, y1, x1 + w, y1 + h]) + rng.normal(0, box_noise, 4) * [w, h, w, h]
            noisy = np.clip(noisy, 0, [width, height, width, height])
            if noisy[2] - noisy[0] < 2 or noisy[3] - noisy[1] < 2:
                continue
            score = rng.uniform(0.6, 0.95) if visibility >= occluded_below else rng.uniform(0.15, 0.45)
            dets.append([*noisy, score])
        for _ in range(rng.poisson(false_positives)):
            w, h = rng.uniform(20, 80, 2)
            x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
            dets.append([x1, y1, x1 + w, y1 + h, rng.uniform(0.1, 0.4)])
        stream.append(np.array(dets, np.float64).reshape(-1, 5))
    return stream


def random_detection_stream(
    rng: np.random.Generator,
    *,
    num_objects: int = 20,
    num_frames: int = 60,
    size: tuple[int, int] = (480, 640),
) -> list[np.ndarray]:
    """Random objects moving at constant velocity with jitter, random scores (some low, some under 0.1),
    misses,
    births and deaths: per frame an ``[N, 5]`` array (x1, y1, x2, y2, score)."""
    height, width = size
    centres = rng.uniform([0, 0], [width, height], (num_objects, 2))
    velocities = rng.normal(0, 4, (num_objects, 2))
    sizes = rng.uniform(15, 90, (num_objects, 2))
    alive = rng.random(num_objects) < 0.7
    stream = []
    for _ in range(num_frames):
        centres += velocities + rng.normal(0, 1.0, (num_objects, 2))
        alive ^= rng.random(num_objects) < 0.03  # objects leave and (re)appear
        shown = alive & (rng.random(num_objects) > 0.1)
        jitter = sizes * rng.uniform(0.9, 1.1, (num_objects, 2))
        boxes = np.concatenate([centres - jitter / 2, centres + jitter / 2], axis=1)
        scores = np.where(
            rng.random(num_objects) < 0.7,
            rng.uniform(0.5, 1.0, num_objects),
            rng.uniform(0, 0.6, num_objects),
        )
        order = rng.permutation(int(shown.sum()))  # detectors list objects in no fixed order
        stream.append(np.concatenate([boxes, scores[:, None]], axis=1)[shown][order])
    return stream


def write_generated_sequence(
    sequence: Sequence, folder: str | Path, *, name: str = "synthetic-occlusion"
) -> Path:
    """MOTChallenge layout: ``folder/name/{img1/000001.jpg..., gt/gt.txt, seqinfo.ini}``; returns the sequence
    folder."""
    return write_sequence(Path(folder) / name, sequence.frames, sequence.gt, frame_rate=sequence.frame_rate)
