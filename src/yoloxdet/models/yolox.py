"""The YOLOX detector: neck (which owns the backbone) followed by a head.

``forward`` returns the same raw :class:`HeadOutputs` in train and eval mode. The attribute is called
``backbone`` although it holds the neck, because official checkpoints name it so (``backbone.backbone.*``).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..structures import HeadOutputs


class YOLOX(nn.Module):
    def __init__(self, neck: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = neck
        self.head = head

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.strides

    def forward(self, images: Tensor) -> HeadOutputs:
        """images: [B, 3, H, W] float, BGR, 0-255 (no normalisation), H and W multiples of 32."""
        return self.head(self.backbone(images))
