"""Drawing on images (BGR uint8, OpenCV conventions): detection boxes with labels, one colour per class."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# A 20-colour palette (BGR) with good contrast on natural images; classes cycle through it.
_PALETTE_BGR: tuple[tuple[int, int, int], ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip


def class_color(class_id: int) -> tuple[int, int, int]:
    """The BGR colour of a class (stable across images and runs)."""
    return _PALETTE_BGR[int(class_id) % len(_PALETTE_BGR)]


def label_text(class_id: int, score: float, names: Sequence[str]) -> str:
    name = names[class_id] if 0 <= class_id < len(names) else str(class_id)
    return f"{name} {score:.2f}"


def draw_detections(
    image_bgr: np.ndarray,
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    names: Sequence[str],
    *,
    line_width: int | None = None,
) -> np.ndarray:
    """A copy of ``image_bgr`` with each box outlined in its class colour and labelled "name score".

    Args:
        image_bgr: [H, W, 3] uint8.
        boxes_xyxy: [N, 4] in the image's pixels (clipped to the image for drawing).
        scores: [N]. class_ids: [N] contiguous class indices into ``names``.
        line_width: box thickness in pixels; default scales with the image size.
    """
    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    thickness = line_width or max(1, round((height + width) / 600))
    font_scale = max(0.35, thickness / 3)
    for box, score, class_id in zip(np.asarray(boxes_xyxy), np.asarray(scores), np.asarray(class_ids)):
        x1, y1, x2, y2 = (
            int(v) for v in np.rint(np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1]))
        )
        color = class_color(int(class_id))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        text = label_text(int(class_id), float(score), names)
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        # label above the box, or inside it when the box touches the top edge
        top = y1 - text_h - baseline if y1 - text_h - baseline >= 0 else y1
        cv2.rectangle(canvas, (x1, top), (x1 + text_w, top + text_h + baseline), color, cv2.FILLED)
        text_color = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        cv2.putText(
            canvas, text, (x1, top + text_h), cv2.FONT_HERSHEY_SIMPLEX, font_scale, text_color, 1, cv2.LINE_AA
        )
    return canvas
