"""A generated detection dataset: filled rectangles and ellipses on noisy, faintly lined backgrounds (YOLO
txt).

Small, deterministic for a seed and learnable in minutes on a CPU, so trainer tests, ``yoloxdet ablate`` and
the ablation docs can train something real without downloading data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("rectangle", "ellipse")
Label = tuple[int, float, float, float, float]  # class, cx, cy, w, h (fractions of the image size)


def _image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[Label]]:
    base = rng.integers(40, 120, size=3)
    image = (base + rng.normal(0, 18, (size, size, 3))).clip(0, 255).astype(np.uint8)
    for _ in range(6):  # texture: faint random lines, so the background is not trivially flat
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(
            image, tuple(int(v) for v in p1), tuple(int(v) for v in p2), tuple(int(v) for v in base + 30), 1
        )
    labels = []
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(0, len(CLASSES)))
        w, h = (int(v) for v in rng.integers(size // 6, size // 2.5, 2))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        colour = tuple(int(v) for v in rng.integers(150, 256, 3))
        if cls == 0:
            cv2.rectangle(image, (x0, y0), (x0 + w - 1, y0 + h - 1), colour, -1)
        else:
            cv2.ellipse(image, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360, colour, -1)
        labels.append((cls, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size))
    return image, labels


def write_shapes_dataset(
    root: str | Path, *, train: int = 48, val: int = 16, size: int = 160, seed: int = 0
) -> Path:
    """Write images/{train,val}, labels/{train,val} and data.yaml under ``root``; returns the YAML path."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, labels = _image(rng, size)
            cv2.imwrite(str(root / "images" / split / f"{i:04d}.png"), image)
            rows = [f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in labels]
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(rows) + "\n")
    yaml_path = root / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    yaml_path.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return yaml_path
