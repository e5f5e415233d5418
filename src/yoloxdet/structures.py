"""Data types passed between the model, assigners, losses and post-processing.

Shape legend used across the package:

    B  images in a batch
    A  anchor points over all FPN levels (level by level, stride 8 -> 16 -> 32, row-major within a level)
    G  ground-truth boxes per image (padded to the batch maximum; see ``Targets.mask``)
    C  classes
    F  foreground (positive) anchor points
    N  detections kept after post-processing

Box formats are named in every field: ``xyxy`` (corners) or ``cxcywh`` (centre + size), in input-image pixels
unless the name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


class HeadOutputs(NamedTuple):
    """Raw head outputs, the same in train and eval mode.

    Decoding, losses and export are functions on top of this; the model itself never decodes.
    ``strides`` and ``feature_sizes`` describe how ``A`` splits into levels.
    """

    box_raw: Tensor  # [B, A, 4] raw (tx, ty, tw, th) before decoding
    obj_logits: Tensor  # [B, A]
    cls_logits: Tensor  # [B, A, C]
    strides: tuple[int, ...]  # per level, e.g. (8, 16, 32)
    feature_sizes: tuple[tuple[int, int], ...]  # per level (h, w)


@dataclass(frozen=True)
class Targets:
    """Ground truth for a batch, padded to ``G`` boxes per image.

    ``mask[b, g]`` is True for real boxes. Unlike the official loader, padding is explicit, so a box whose
    coordinates sum to zero is not mistaken for padding.
    """

    boxes_cxcywh: Tensor  # [B, G, 4] float, input-image pixels
    labels: Tensor  # [B, G] int64, contiguous class index
    mask: Tensor  # [B, G] bool

    @property
    def num_gt(self) -> Tensor:  # [B]
        return self.mask.sum(dim=1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Targets:
        tensors = (self.boxes_cxcywh, self.labels, self.mask)
        return Targets(*(t.to(device, non_blocking=non_blocking) for t in tensors))

    def pin_memory(self) -> Targets:
        """Page-locked copies (the DataLoader calls this with ``pin_memory=True``): asynchronous copies to a
        GPU."""
        return Targets(self.boxes_cxcywh.pin_memory(), self.labels.pin_memory(), self.mask.pin_memory())

    @staticmethod
    def from_list(boxes_cxcywh: list[Tensor], labels: list[Tensor]) -> Targets:
        """Pack per-image ``[G_i, 4]`` boxes and ``[G_i]`` labels into padded tensors."""
        batch = len(boxes_cxcywh)
        g_max = max((len(b) for b in boxes_cxcywh), default=0)
        device = boxes_cxcywh[0].device if batch else torch.device("cpu")
        out_boxes = torch.zeros(batch, g_max, 4, device=device)
        out_labels = torch.zeros(batch, g_max, dtype=torch.long, device=device)
        mask = torch.zeros(batch, g_max, dtype=torch.bool, device=device)
        for i, (b, lab) in enumerate(zip(boxes_cxcywh, labels)):
            n = len(b)
            out_boxes[i, :n] = b
            out_labels[i, :n] = lab
            mask[i, :n] = True
        return Targets(out_boxes, out_labels, mask)


@dataclass(frozen=True)
class Assignment:
    """Result of label assignment for a batch.

    ``matched_gt`` is the index into the padded ``G`` axis, ``-1`` for background.
    ``matched_iou`` is the IoU between the prediction and its matched GT (0 for background).
    """

    fg_mask: Tensor  # [B, A] bool
    matched_gt: Tensor  # [B, A] int64
    matched_iou: Tensor  # [B, A] float
    cost: Tensor | None = None  # [B, A] cost of each positive, for visualisation (optional)

    @classmethod
    def background(cls, batch: int, num_anchors: int, device: torch.device | str = "cpu") -> Assignment:
        """Every anchor background: what an assigner returns for images without any GT."""
        return cls(
            fg_mask=torch.zeros(batch, num_anchors, dtype=torch.bool, device=device),
            matched_gt=torch.full((batch, num_anchors), -1, dtype=torch.long, device=device),
            matched_iou=torch.zeros(batch, num_anchors, device=device),
            cost=torch.zeros(batch, num_anchors, device=device),
        )

    @property
    def num_fg(self) -> Tensor:  # scalar int64
        return self.fg_mask.sum()
