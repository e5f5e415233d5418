"""The YOLOX training loss, as official ``YOLOXHead.get_losses`` (reference §3.4).

``total = 5·iou + obj + cls + l1``, every term summed and divided by the number of positives (at least 1):

* ``iou``: ``1 - IoU²`` between decoded predictions and their matched boxes, ``IoU = inter / (union + 1e-16)``
  (returned already multiplied by 5, as official);
* ``obj``: BCE-with-logits of the objectness over *all* anchors against the foreground mask;
* ``cls``: BCE-with-logits of the class logits of positives against ``onehot(label) · matched IoU``
  (IoU-aware);
* ``l1``: only with ``use_l1`` (the no-augmentation phase), L1 between raw box outputs of positives and
  ``[gx/s - grid_x, gy/s - grid_y, log(gw/s + 1e-8), log(gh/s + 1e-8)]``.

Normalisation across processes (DDP): official divides by the positives of *this* process only, with no
all-reduce, so each process's loss is normalised by its own count; that is the default
(``num_fg_reduction="local"``). ``num_fg_reduction="mean"`` all-reduces the count and uses the mean over
processes (a steadier normaliser when processes see very different numbers of objects); without an initialised
process group it equals ``"local"``. Terms are computed in float32 whatever the outputs' dtype (AMP).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .ops.decode import anchor_points, decode_boxes
from .structures import Assignment, HeadOutputs, Targets

IOU_LOSS_WEIGHT = 5.0
L1_TARGET_EPS = 1e-8
IOU_LOSS_EPS = 1e-16


def iou_loss(pred_cxcywh: Tensor, target_cxcywh: Tensor) -> Tensor:
    """[N] ``1 - IoU²`` of aligned box pairs [N, 4] (official ``IOUloss(loss_type="iou")``, eps 1e-16 in the
    union)."""
    top_left = torch.maximum(
        pred_cxcywh[:, :2] - pred_cxcywh[:, 2:] / 2, target_cxcywh[:, :2] - target_cxcywh[:, 2:] / 2
    )
    bottom_right = torch.minimum(
        pred_cxcywh[:, :2] + pred_cxcywh[:, 2:] / 2, target_cxcywh[:, :2] + target_cxcywh[:, 2:] / 2
    )
    overlaps = (top_left < bottom_right).to(top_left.dtype).prod(dim=1)
    inter = (bottom_right - top_left).prod(dim=1) * overlaps
    union = pred_cxcywh[:, 2:].prod(dim=1) + target_cxcywh[:, 2:].prod(dim=1) - inter
    return 1 - (inter / (union + IOU_LOSS_EPS)) ** 2


def l1_target(gt_cxcywh: Tensor, grid_xy: Tensor, stride: Tensor) -> Tensor:
    """[N, 4] raw-output targets that decode to ``gt_cxcywh`` (official ``get_l1_target``)."""
    stride = stride[:, None]
    return torch.cat(
        [gt_cxcywh[:, :2] / stride - grid_xy, torch.log(gt_cxcywh[:, 2:4] / stride + L1_TARGET_EPS)], dim=1
    )


def normaliser(num_fg: Tensor, reduction: str = "local") -> Tensor:
    """The positive count every term is divided by: this process's (official) or the mean over processes."""
    count = num_fg.float()
    if reduction == "mean":
        if dist.is_available() and dist.is_initialized():
            count = count.clone()
            dist.all_reduce(count)
            count = count / dist.get_world_size()
    elif reduction != "local":
        raise ValueError(f"num_fg_reduction must be 'local' or 'mean', got {reduction!r}")
    return count.clamp(min=1.0)


def yolox_loss(
    outputs: HeadOutputs,
    targets: Targets,
    assignment: Assignment,
    *,
    use_l1: bool,
    num_fg_reduction: str = "local",
) -> dict[str, Tensor]:
    """Loss terms for a batch, keyed ``total``, ``iou`` (×5), ``obj``, ``cls``, ``l1``, ``num_fg``,
    ``fg_per_gt``.

    ``num_fg`` is the positive count of this process; ``fg_per_gt`` is official's logged ``num_fg``: positives
    (at least 1, as official) per ground truth. ``l1`` is a zero tensor when ``use_l1`` is False.
    """
    fg = assignment.fg_mask
    num_fg = fg.sum()
    norm = normaliser(num_fg, num_fg_reduction)
    batch_index, anchor_index = fg.nonzero(
        as_tuple=True
    )  # batch-major, anchor order: official's concatenation
    gt_index = assignment.matched_gt[batch_index, anchor_index]
    gt_boxes = targets.boxes_cxcywh[batch_index, gt_index].float()

    pred_boxes = decode_boxes(outputs._replace(box_raw=outputs.box_raw.float()))[batch_index, anchor_index]
    loss_iou = iou_loss(pred_boxes, gt_boxes).sum() / norm

    obj_logits = outputs.obj_logits.float()
    loss_obj = F.binary_cross_entropy_with_logits(obj_logits, fg.to(obj_logits.dtype), reduction="sum") / norm

    cls_logits = outputs.cls_logits[batch_index, anchor_index].float()
    labels = targets.labels[batch_index, gt_index]
    cls_target = F.one_hot(labels, cls_logits.shape[-1]).to(cls_logits.dtype)
    cls_target = cls_target * assignment.matched_iou[batch_index, anchor_index, None].float()
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits, cls_target, reduction="sum") / norm

    if use_l1:
        grid_xy, stride = anchor_points(outputs.feature_sizes, outputs.strides, fg.device)
        target = l1_target(gt_boxes, grid_xy[anchor_index], stride[anchor_index])
        raw = outputs.box_raw[batch_index, anchor_index].float()
        loss_l1 = F.l1_loss(raw, target, reduction="sum") / norm
    else:
        loss_l1 = obj_logits.new_zeros(())

    weighted_iou = IOU_LOSS_WEIGHT * loss_iou
    return {
        "total": weighted_iou + loss_obj + loss_cls + loss_l1,
        "iou": weighted_iou,
        "obj": loss_obj,
        "cls": loss_cls,
        "l1": loss_l1,
        "num_fg": num_fg,
        "fg_per_gt": num_fg.clamp(min=1) / targets.mask.sum().clamp(min=1),
    }
