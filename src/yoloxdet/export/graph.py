"""The module that gets exported: the raw model plus decoding (or NMS) on top, built from the input's symbolic
size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor, nn

from ..config import PredictConfig
from ..ops.boxes import cxcywh_to_xyxy
from ..ops.decode import arange_like, decode, decode_boxes
from ..structures import HeadOutputs
from .metadata import LAYOUTS, ExportMetadata


def _cells(size: int | torch.SymInt, stride: int) -> int | torch.SymInt:
    # ceil division, written with // so it stays symbolic under torch.export
    return (size + stride - 1) // stride


def with_input_grid(
    outputs: HeadOutputs, height: int | torch.SymInt, width: int | torch.SymInt
) -> HeadOutputs:
    """``outputs`` with feature sizes derived from the input size, which stay symbolic in an exported
    graph."""
    sizes = tuple((_cells(height, s), _cells(width, s)) for s in outputs.strides)
    return outputs._replace(feature_sizes=sizes)


def raw_layout(outputs: HeadOutputs) -> Tensor:
    """[B, A, 5 + C] official export layout: raw ``tx, ty, tw, th``, sigmoid(obj), sigmoid(cls)."""
    return torch.cat(
        [outputs.box_raw, outputs.obj_logits.sigmoid()[..., None], outputs.cls_logits.sigmoid()], -1
    )


def decode_raw_layout(raw: Tensor, strides: Sequence[int], input_hw: tuple[int, int]) -> Tensor:
    """Decode the boxes of a raw-layout output (official ONNX files) into the ``decode`` layout."""
    outputs = HeadOutputs(raw[..., :4], raw[..., 4], raw[..., 5:], tuple(strides), ())
    outputs = with_input_grid(outputs, *input_hw)
    return torch.cat([decode_boxes(outputs), raw[..., 4:]], dim=-1)


def nms_detections(decoded: Tensor, conf_threshold: float, nms_iou_threshold: float) -> Tensor:
    """[N, 7] detections of the whole batch: (image index, x1, y1, x2, y2, score, class), as ``postprocess``.

    Written without Python branches on data so that it exports: one ``nms`` over all images and classes, with
    the boxes of each (image, class) group shifted apart, which is what ``batched_nms`` does per image.
    """
    batch, anchors, _ = decoded.shape
    num_classes = decoded.shape[2] - 5
    boxes = cxcywh_to_xyxy(decoded[..., :4])  # [B, A, 4]
    class_conf, class_ids = decoded[..., 5:].max(dim=-1)  # [B, A]
    scores = decoded[..., 4] * class_conf
    image_ids = arange_like(batch, decoded, torch.long)[:, None].expand(batch, anchors)
    # the shift is taken over all boxes before filtering, so it exists even when nothing passes the filter
    shift = boxes.abs().flatten().amax(dim=0) + 1
    keep = (scores >= conf_threshold).reshape(-1)
    boxes, scores = boxes.reshape(-1, 4)[keep], scores.reshape(-1)[keep]
    class_ids, image_ids = class_ids.reshape(-1)[keep], image_ids.reshape(-1)[keep]
    groups = (image_ids * num_classes + class_ids).to(boxes.dtype)
    kept = torchvision.ops.nms(boxes + (groups * shift)[:, None], scores, nms_iou_threshold)
    columns = [image_ids[kept, None].to(boxes.dtype), boxes[kept], scores[kept, None], class_ids[kept, None]]
    return torch.cat([c.to(boxes.dtype) for c in columns], dim=1)


class ExportWrapper(nn.Module):
    """``images -> [B, A, 5 + C]`` (decoded or raw layout) or ``[N, 7]`` detections (``nms``); what gets
    exported."""

    def __init__(
        self,
        model: nn.Module,
        layout: str = "decoded",
        conf_threshold: float = PredictConfig.conf_threshold,
        nms_iou_threshold: float = PredictConfig.nms_iou_threshold,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown output layout {layout!r}; expected one of {LAYOUTS}")
        self.model = model
        self.layout = layout
        self.conf_threshold = conf_threshold
        self.nms_iou_threshold = nms_iou_threshold

    def forward(self, images: Tensor) -> Tensor:
        outputs = with_input_grid(self.model(images), images.shape[2], images.shape[3])
        if self.layout == "raw":
            return raw_layout(outputs)
        if self.layout == "nms":
            return nms_detections(decode(outputs), self.conf_threshold, self.nms_iou_threshold)
        return decode(outputs)

    @classmethod
    def for_metadata(cls, model: nn.Module, metadata: ExportMetadata) -> ExportWrapper:
        return cls(model, metadata.output_layout, metadata.conf_threshold, metadata.nms_iou_threshold).eval()
