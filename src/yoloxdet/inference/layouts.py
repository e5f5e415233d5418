"""The output layouts of exported files (decoded, raw, NMS) turned into the decoded ``[B, A, 5 + C]`` layout
that every backend returns, whichever runtime produced them."""

from __future__ import annotations

import torch
from torch import Tensor

from ..export.graph import decode_raw_layout
from ..export.metadata import ExportMetadata


def detections_to_decoded(detections: Tensor, batch: int, num_classes: int) -> Tensor:
    """``[N, 7]`` NMS output (image, x1, y1, x2, y2, score, class) -> ``[B, M, 5 + C]`` decoded layout.

    Each detection becomes a row with obj = score and a one-hot class, so ``obj * cls`` is its score again;
    padding rows get obj -1 and never pass a score filter.
    """
    detections = detections[torch.argsort(detections[:, 0], stable=True)]  # group by image, keep score order
    image_ids = detections[:, 0].long()
    counts = torch.bincount(image_ids, minlength=batch)
    first_slot = (torch.cumsum(counts, 0) - counts)[image_ids]
    slot = torch.arange(len(detections), device=detections.device) - first_slot
    out = detections.new_zeros(batch, int(counts.max()) if len(detections) else 0, 5 + num_classes)
    out[..., 4], out[..., 5] = -1.0, 1.0
    x1, y1, x2, y2 = detections[:, 1:5].unbind(dim=1)
    out[image_ids, slot, :4] = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
    out[image_ids, slot, 4] = detections[:, 5]
    out[image_ids, slot, 5] = 0.0
    out[image_ids, slot, 5 + detections[:, 6].long()] = 1.0
    return out


def as_decoded(out: Tensor, metadata: ExportMetadata, images: Tensor) -> Tensor:
    """A backend's raw answer in the decoded ``[B, A, 5 + C]`` layout whatever the file's output layout."""
    if metadata.output_layout == "raw":
        return decode_raw_layout(out, metadata.strides, (images.shape[2], images.shape[3]))
    if metadata.output_layout == "nms":
        return detections_to_decoded(out, len(images), len(metadata.class_names))
    return out
