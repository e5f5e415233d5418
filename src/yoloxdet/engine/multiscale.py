"""Multi-scale training (official ``random_resize`` + ``Exp.preprocess``, reference §4).

The size for an iteration is a pure function of ``(seed, iteration // interval)``: every process of a DDP run
draws the same size without communicating, and a resumed run draws exactly what the uninterrupted one did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from yoloxdet.structures import Targets

STRIDE = 32


@dataclass(frozen=True)
class MultiScale:
    """Sizes ``32·randint(low, high)`` (inclusive) for the height; the width keeps the base aspect ratio."""

    base_hw: tuple[int, int]
    low: int
    high: int
    interval: int = 10
    seed: int = 0

    def size_at(self, iteration: int) -> tuple[int, int]:
        """Input size of 0-based ``iteration``. The first block uses the base size; official draws a new size
        after every ``interval``-th step, for the following steps."""
        block = iteration // self.interval
        if block == 0:
            return self.base_hw
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + block)
        units = int(torch.randint(self.low, self.high + 1, (1,), generator=gen))
        aspect = self.base_hw[1] / self.base_hw[0]
        return STRIDE * units, STRIDE * int(units * aspect)


def multiscale_for(
    base_hw: tuple[int, int], range_units: int, random_size: tuple[int, int] | None, interval: int, seed: int
) -> MultiScale | None:
    """The official range: ``random_size`` if the model sets one, else ``base/32 ± range``; None when
    disabled."""
    if range_units <= 0 or interval <= 0:
        return None
    if random_size is not None:
        low, high = random_size
    else:
        centre = base_hw[0] // STRIDE
        low, high = centre - range_units, centre + range_units
    return MultiScale(tuple(base_hw), max(1, low), high, interval, seed)


def resize_batch(images: Tensor, targets: Targets, size_hw: tuple[int, int]) -> tuple[Tensor, Targets]:
    """Bilinear resize of the whole batch (align_corners=False) and the boxes scaled to match."""
    height, width = images.shape[-2:]
    if (height, width) == tuple(size_hw):
        return images, targets
    scale = images.new_tensor([size_hw[1] / width, size_hw[0] / height] * 2, dtype=targets.boxes_cxcywh.dtype)
    resized = F.interpolate(images, size=tuple(size_hw), mode="bilinear", align_corners=False)
    return resized, Targets(targets.boxes_cxcywh * scale, targets.labels, targets.mask)
