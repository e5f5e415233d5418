"""Checking uploaded bytes before and while decoding them: the format and the pixel count come from the header
(Pillow reads only the header on ``open``), so a decompression bomb is refused before any pixel is decoded."""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..io import ImageReadError, decode_image_bytes


class UploadError(ValueError):
    """An upload the service refuses; ``status`` is the HTTP status and ``kind`` the metrics label."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def probe_size(data: bytes) -> tuple[int, int, str]:
    """``(width, height, format)`` from the image header, without decoding pixels.

    Raises:
        UploadError: 415 when the bytes are not an image format we know.
    """
    if not data:
        raise UploadError(422, "unreadable_image", "the request has no image: the body is empty")
    try:
        with Image.open(BytesIO(data)) as header:
            width, height = header.size
            return width, height, header.format or "unknown"
    except Image.DecompressionBombError as exc:  # Pillow's own ceiling, twice Image.MAX_IMAGE_PIXELS
        raise UploadError(413, "too_many_pixels", f"the image is a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise UploadError(
            415,
            "unsupported_media",
            "the body is not an image in a known format (JPEG, PNG, WebP, BMP, TIFF ...)",
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(422, "unreadable_image", f"the image header is corrupt ({exc})") from None


def decode_upload(data: bytes, *, max_pixels: int, name: str = "upload") -> np.ndarray:
    """Uploaded bytes -> ``[H, W, 3]`` uint8 BGR, decoded as ``Detector`` decodes files.

    Raises:
        UploadError: 415 not an image, 413 more than ``max_pixels`` pixels, 422 corrupt pixel data.
    """
    width, height, fmt = probe_size(data)
    if width * height > max_pixels:
        raise UploadError(
            413,
            "too_many_pixels",
            f"the {fmt} image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
        )
    try:
        image = decode_image_bytes(data, f"{name} ({fmt})")
    except ImageReadError as exc:
        raise UploadError(422, "unreadable_image", f"{exc}: the pixel data is corrupt or truncated") from None
    if image.shape[0] * image.shape[1] > max_pixels:  # a header that lied about its size
        raise UploadError(
            413, "too_many_pixels", f"the decoded image is over the limit of {max_pixels} pixels"
        )
    return image
