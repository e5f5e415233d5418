"""Score filter and NMS into per-image detections (reference §2.6), as the official ``postprocess``."""

from __future__ import annotations

from typing import NamedTuple

import torchvision
from torch import Tensor

from ..config import EvalConfig
from .boxes import cxcywh_to_xyxy


class RawDetections(NamedTuple):
    """Detections of one image in input (letterboxed) pixels."""

    boxes_xyxy: Tensor  # [N, 4]
    scores: Tensor  # [N] obj * class prob
    class_ids: Tensor  # [N] int64


def postprocess(
    decoded: Tensor,
    conf_threshold: float = EvalConfig.conf_threshold,
    nms_iou_threshold: float = EvalConfig.nms_iou_threshold,
    class_agnostic: bool = False,
    max_detections: int | None = None,
) -> list[RawDetections]:
    """Score filter and NMS per image, as official ``postprocess``: one label per box (argmax class),
    keep ``obj * cls >= conf_threshold``, class-aware ``batched_nms`` unless ``class_agnostic``.

    Args:
        decoded: [B, A, 5 + C] from :func:`decode`.
        max_detections: optional cap on kept boxes per image (official has none).
    """
    results = []
    for image_pred in decoded:
        class_conf, class_pred = image_pred[:, 5:].max(dim=1)
        scores = image_pred[:, 4] * class_conf
        keep = scores >= conf_threshold
        boxes = cxcywh_to_xyxy(image_pred[keep, :4])
        scores, class_pred = scores[keep], class_pred[keep]
        if class_agnostic:
            kept = torchvision.ops.nms(boxes, scores, nms_iou_threshold)
        else:
            kept = torchvision.ops.batched_nms(boxes, scores, class_pred, nms_iou_threshold)
        if max_detections is not None:
            kept = kept[:max_detections]
        results.append(RawDetections(boxes[kept], scores[kept], class_pred[kept]))
    return results
