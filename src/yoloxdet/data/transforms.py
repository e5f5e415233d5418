"""Image and box transforms as pure numpy/cv2 functions (reference §4.5). Randomness comes from an explicit
``numpy.random.Generator`` argument, never from global state."""

from __future__ import annotations

import cv2
import numpy as np

PAD_VALUE = 114


def letterbox(
    image: np.ndarray, size_hw: tuple[int, int], pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, float]:
    """Resize keeping aspect ratio and paste at the top-left of a ``size_hw`` canvas filled with
    ``pad_value``.

    As the official ``preproc``: ratio ``r = min(H / h, W / w)``, ``cv2.resize`` to
    ``(int(w * r), int(h * r))`` with INTER_LINEAR. Boxes map to the canvas by multiplying with ``r`` (no
    offset, the padding is top-left).

    Args:
        image: [h, w, 3] uint8 BGR.
        size_hw: output (H, W).
    Returns:
        canvas [H, W, 3] uint8 and the ratio ``r``.
    """
    h, w = image.shape[:2]
    out_h, out_w = size_hw
    ratio = min(out_h / h, out_w / w)
    resized = cv2.resize(image, (int(w * ratio), int(h * ratio)), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((out_h, out_w, 3), pad_value, dtype=np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, ratio


def to_chw_float(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 BGR -> [3, H, W] float32 0-255 BGR, contiguous (the model's input convention)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
