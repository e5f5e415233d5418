"""The peer (pixeltable-yolox, official numerics) set up as the benchmarks compare against it: its
``MosaicDetection`` with the official recipe at mosaic and mixup probability 1, driven by our resolved
augmentation settings."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from yoloxdet.data.augment import ResolvedAugment


def peer_mosaic(base: Any, size: tuple[int, int], aug: ResolvedAugment) -> Any:
    """The peer's ``MosaicDetection`` over its dataset ``base`` (mosaic + mixup every sample), with Python's
    and numpy's global generators seeded, which the peer draws from."""
    # the peer is installed for tests and benchmarks only
    from yolox.data.data_augment import TrainTransform
    from yolox.data.datasets.mosaicdetection import MosaicDetection

    mosaic = MosaicDetection(
        base,
        img_size=size,
        mosaic=True,
        preproc=TrainTransform(max_labels=120),
        degrees=aug.degrees,
        translate=aug.translate,
        mosaic_scale=aug.mosaic_scale,
        mixup_scale=aug.mixup_scale,
        shear=aug.shear,
        enable_mixup=True,
        mosaic_prob=1.0,
        mixup_prob=1.0,
    )
    random.seed(0)
    np.random.seed(0)
    return mosaic
