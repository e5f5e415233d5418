"""Reading images robustly into the model's convention: BGR uint8 ``[H, W, 3]``.

Files are decoded with OpenCV, as the official code does (``cv2.imread``), so pixel values and therefore
detections match the official evaluation; ``IMREAD_COLOR`` already applies the EXIF orientation, expands
grayscale, drops alpha and scales 16-bit to 8-bit. Formats OpenCV cannot decode fall back to Pillow. In-memory
inputs follow their library's channel order: numpy arrays are BGR (OpenCV), PIL images are RGB and get
EXIF-transposed.
"""

from __future__ import annotations

import glob
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = str | Path | np.ndarray | Image.Image

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jp2", ".pgm", ".ppm"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"})


class ImageReadError(ValueError):
    """An input could not be turned into an image; the message names the input and the reason."""


def read_image(source: ImageSource) -> np.ndarray:
    """Any supported input -> ``[H, W, 3]`` uint8 BGR, contiguous.

    Args:
        source: a file path; a numpy array (BGR or BGRA, gray ``[H, W]`` or ``[H, W, 1]``; uint8, uint16
            scaled to 8 bits, or float in 0-255); or a PIL image (any mode; RGB order, EXIF orientation
            applied).
    Raises:
        ImageReadError: unreadable file, unsupported array shape/dtype, empty image.
    """
    if isinstance(source, str | Path):
        return _read_file(Path(source))
    if isinstance(source, Image.Image):
        return _from_pil(source, "PIL image")
    if isinstance(source, np.ndarray):
        return array_to_bgr(source, "array")
    raise ImageReadError(f"unsupported image input of type {type(source).__name__}")


def _read_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    # reading the bytes + imdecode handles non-ASCII paths, which cv2.imread does not on every platform
    return decode_image_bytes(path.read_bytes(), str(path))


def decode_image_bytes(data: bytes, name: str) -> np.ndarray:
    """An encoded image file's contents -> ``[H, W, 3]`` uint8 BGR, decoded as files are (OpenCV, then
    Pillow).

    Raises:
        ImageReadError: the bytes are not a decodable image (``name`` is in the message).
    """
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is not None and image.size:
        return image
    try:
        with Image.open(io.BytesIO(data)) as pil:
            return _from_pil(pil, name)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({type(exc).__name__})") from None


def _from_pil(image: Image.Image, name: str) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return array_to_bgr(np.asarray(image), name)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def array_to_bgr(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Normalise an in-memory BGR(A)/gray array of uint8, uint16 or float 0-255 to ``[H, W, 3]`` uint8 BGR."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or array.size == 0:
        raise ImageReadError(
            f"{name}: expected an image of shape [H, W], [H, W, 3] or [H, W, 4], got {array.shape}"
        )
    if array.dtype == np.uint16 or (array.dtype == np.int32 and array.max(initial=0) > 255):
        array = (array.astype(np.uint32) >> 8).astype(np.uint8)  # same 16 -> 8 bit rule as OpenCV
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise ImageReadError(f"{name}: unsupported pixel type {array.dtype}")
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(array)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """Paths, folders (their image and video files, sorted) and glob patterns -> a flat list of files.

    Raises:
        FileNotFoundError: a path or pattern that matches nothing.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                )
            )
        elif path.exists():
            files.append(path)
        elif glob.has_magic(str(source)):
            matches = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).is_file())
            if not matches:
                raise FileNotFoundError(f"{source}: the pattern matches no files")
            files.extend(matches)
        else:
            raise FileNotFoundError(f"{source}: no such file or folder")
    return files


def _default_file_mode() -> int:
    umask = os.umask(0)  # reading the umask means setting it; done once, at import
    os.umask(umask)
    return 0o666 & ~umask


_DEFAULT_FILE_MODE = _default_file_mode()


@contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """The one "temporary file, then rename" writer: yields a temporary path beside ``path`` for the caller to
    write (any library's ``save(obj, tmp)``), then moves it over ``path``; on error the temporary file is
    removed, so a crash never leaves a half-written file under the final name. ``mode``: permission bits for
    the result; by default those of a file made by ``open`` (``mkstemp`` alone would leave it private to the
    user)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _DEFAULT_FILE_MODE if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same folder, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_figure_atomic(figure: Any, path: str | Path, dpi: int = 80) -> Path:
    """Render a matplotlib ``figure`` as PNG into ``path`` atomically (the caller still owns and closes
    it)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
