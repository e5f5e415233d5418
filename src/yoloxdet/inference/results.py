"""Per-image detection results returned by :class:`yoloxdet.Detector`: numpy arrays in original-image pixels,
with helpers to draw, save and serialise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..io import read_image, write_bytes_atomic
from ..viz import draw_detections


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one image.

    Attributes:
        xyxy: [N, 4] float32 boxes (x1, y1, x2, y2) in original-image pixels.
        scores: [N] float32, objectness x class probability.
        class_ids: [N] int64 contiguous class indices into ``names``.
        names: all class names of the model.
        orig_shape: (height, width) of the original image.
        image_path: the source file, when the image came from one.
        frame_index: the frame number, when the image came from a video.
        image: the original BGR image, kept when asked for (``keep_images=True``) so :meth:`draw` needs no
            argument.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...]
    orig_shape: tuple[int, int]
    image_path: Path | None = None
    frame_index: int | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def labels(self) -> list[str]:
        """Class name of every detection."""
        return [self.names[i] for i in self.class_ids.tolist()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source, image size and a list of {box_xyxy, score, class_id, class_name}."""
        height, width = self.orig_shape
        out: dict[str, Any] = {}
        if self.image_path is not None:
            out["image"] = str(self.image_path)
        if self.frame_index is not None:
            out["frame"] = self.frame_index
        out["height"], out["width"] = height, width
        out["detections"] = [
            {"box_xyxy": [round(float(v), 2) for v in box], "score": round(float(score), 5),
             "class_id": int(c), "class_name": self.names[int(c)]}
            for box, score, c in zip(self.xyxy, self.scores, self.class_ids)
        ]  # fmt: skip
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def draw(self, image: np.ndarray | None = None, *, line_width: int | None = None) -> np.ndarray:
        """The image (BGR) with boxes and labels drawn; ``image`` defaults to the kept or re-read original."""
        if image is None:
            image = self.image
        if image is None and self.image_path is not None:
            image = read_image(self.image_path)
        if image is None:
            raise ValueError("no image to draw on: pass image= or predict with keep_images=True")
        if image.shape[:2] != tuple(self.orig_shape):
            raise ValueError(f"image shape {image.shape[:2]} differs from the detections' {self.orig_shape}")
        return draw_detections(
            image, self.xyxy, self.scores, self.class_ids, self.names, line_width=line_width
        )

    def save(self, path: str | Path, image: np.ndarray | None = None) -> Path:
        """Write the annotated image (format from the suffix) atomically; returns the path."""
        path = Path(path)
        ok, encoded = cv2.imencode(path.suffix or ".jpg", self.draw(image))
        if not ok:
            raise ValueError(f"{path}: cannot encode an image with suffix '{path.suffix}'")
        write_bytes_atomic(path, encoded.tobytes())
        return path
