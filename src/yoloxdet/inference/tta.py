"""Test-time augmentation by flips: the network also sees mirrored copies of each image, and their boxes,
mapped back, join the plain view's before the score filter and NMS.

Flips map boxes back exactly (a mirrored ``cx`` is ``width - cx``; sizes do not change), so no view needs
resampling. Joining before NMS (as YOLOv5's ``augment``) keeps, of the copies of one object, the view that
scored it highest, and an object one view misses can still be found by another. Each view is one more forward
pass: ``hflip`` doubles the network's time, ``flips`` quadruples it.

Not always a gain: the official Nano on coco128 gains 0.014 AP with ``hflip``, while the tree-crown demo's
fine-tuned models lose cross-site AP with either mode (README, docs/demo.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Views besides the plain one, as the image dimensions each flips ([..., H, W]: -1 mirrors left-right).
TTA_VIEWS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": (),
    "hflip": ((-1,),),  # left-right: the flip the official training applies
    "flips": ((-1,), (-2,), (-2, -1)),  # also upside down, and both: overhead imagery has no "up"
}


class FlipTTABackend:
    """Wraps a backend (``images [B, 3, H, W]`` -> decoded ``[B, A, 5 + C]``, see
    :class:`~yoloxdet.inference.api.Backend`) into one of the same kind whose output is ``[B, V * A, 5 + C]``:
    the ``V`` views' anchors side by side, boxes in the plain view's input pixels. The views go through the
    backend as one batch of ``V * B`` images."""

    def __init__(self, backend: Callable[[Tensor], Tensor], mode: str) -> None:
        if mode not in TTA_VIEWS:
            raise ValueError(f"unknown test-time augmentation '{mode}'; choose one of {', '.join(TTA_VIEWS)}")
        self.backend = backend
        self.views = TTA_VIEWS[mode]

    def __call__(self, images: Tensor) -> Tensor:
        if not self.views:
            return self.backend(images)
        count = len(images)
        height, width = images.shape[-2:]
        decoded = self.backend(torch.cat([images, *(images.flip(dims) for dims in self.views)]))
        joined = [decoded[:count]]
        for k, dims in enumerate(self.views, start=1):
            view = decoded[k * count : (k + 1) * count].clone()
            if -1 in dims:
                view[..., 0] = width - view[..., 0]
            if -2 in dims:
                view[..., 1] = height - view[..., 1]
            joined.append(view)
        return torch.cat(joined, dim=1)
