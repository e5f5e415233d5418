"""Calibration images for post-training int8: preprocessed exactly as at inference.

Every quantiser (onnxruntime, NNCF, TensorRT) gets the same batches: each image read as BGR uint8, letterboxed
top-left with pad 114 to the model's input size, then float32 0-255 CHW, through the same
:func:`~yoloxdet.data.transforms.letterbox` and :func:`~yoloxdet.data.transforms.to_chw_float` as
:meth:`yoloxdet.inference.api.Detector.predict_arrays`. Ranges calibrated on any other preprocessing would be
wrong for the images the model sees in use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..config import ExportConfig
from ..data.datasets import build_dataset
from ..data.spec import load_dataset_spec
from ..data.transforms import letterbox, to_chw_float
from ..io import IMAGE_SUFFIXES, ImageReadError, expand_sources, read_image


def calibration_image_paths(
    source: str | Path | Sequence[str | Path], limit: int = ExportConfig.calib_images
) -> list[Path]:
    """The first ``limit`` images (sorted) of a folder, glob or file list, or of a dataset YAML's train split.

    A dataset YAML uses its ``train`` split (its ``val`` split when there is no ``train``), so that the
    evaluation images are not the calibration images where the data allow it.
    """
    if limit < 1:
        raise ValueError(f"--calib-images must be at least 1, got {limit}")
    if (
        isinstance(source, str | Path)
        and Path(source).suffix.lower() in (".yaml", ".yml")
        and Path(source).is_file()
    ):
        spec = load_dataset_spec(source)
        split = "train" if "train" in spec.splits else "val"
        paths = [path for _, path in build_dataset(spec, split).records.image_files()]
    else:
        paths = [p for p in expand_sources(source) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise ValueError(f"{source}: no calibration images found (give a folder, a glob or a dataset YAML)")
    return sorted(paths)[:limit]


def preprocess(image_bgr: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """[H, W, 3] uint8 BGR -> [1, 3, h, w] float32 0-255, letterboxed as at inference."""
    canvas, _ = letterbox(image_bgr, input_size)
    return to_chw_float(canvas)[None]


class CalibrationImages:
    """The calibration set: re-read from disk on each pass (quantisers walk it more than once; 300 images at
    640 px would hold 1.5 GB in memory). Yields ``[1, 3, h, w]`` float32 arrays; unreadable images are
    skipped."""

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        input_size: tuple[int, int],
        limit: int = ExportConfig.calib_images,
    ) -> None:
        self.source = source
        self.paths = calibration_image_paths(source, limit)
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            try:
                image = read_image(path)
            except ImageReadError:
                continue  # a broken image is not worth stopping a calibration for; the others still count
            yield preprocess(image, self.input_size)
