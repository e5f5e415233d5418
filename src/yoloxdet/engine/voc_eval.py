"""Pascal VOC average precision (official ``voc_eval``, reference §6.2), as pure functions.

Per class: detections sorted by score; each is a true positive when its best-overlap ground truth of the same
image has IoU above the threshold, is not ``difficult`` and is not taken yet; a best match that is difficult
counts as neither. IoU uses the VOC "+1 pixel" convention (inclusive integer coordinates), as official.
AP is the VOC07 11-point interpolation or the all-point area under the precision envelope.
Classes without non-difficult ground truth are left out of the mean (official would divide by zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from yoloxdet.data.datasets import DetectionDataset

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50:0.05:0.95


@dataclass(frozen=True)
class VocDetections:
    boxes_xyxy: np.ndarray  # [N, 4]
    scores: np.ndarray  # [N]
    labels: np.ndarray  # [N] contiguous class index


@dataclass(frozen=True)
class VocGroundTruth:
    boxes_xyxy: np.ndarray  # [G, 4]
    labels: np.ndarray  # [G]
    difficult: np.ndarray | None = None  # [G] bool; None: none difficult


@dataclass(frozen=True)
class VocMetrics:
    ap50_voc07: float  # mean over classes, 11-point, IoU 0.5
    ap50: float  # all-point, IoU 0.5
    ap50_95_voc07: float  # 11-point, mean over IoU 0.50:0.05:0.95
    ap50_95: float  # all-point, mean over IoU 0.50:0.05:0.95
    per_class_ap50: dict[int, float] = field(default_factory=dict)  # all-point, IoU 0.5

    def summary(self, names: tuple[str, ...] | None = None) -> str:
        lines = [
            f"VOC AP50 (all-point) {self.ap50:.4f}   AP50 (VOC07 11-point) {self.ap50_voc07:.4f}",
            f"VOC AP50:95 (all-point) {self.ap50_95:.4f}   AP50:95 (VOC07 11-point) {self.ap50_95_voc07:.4f}",
        ]
        for c, ap in sorted(self.per_class_ap50.items()):
            lines.append(f"  {names[c] if names and c < len(names) else c:>20s}  AP50 {ap:.4f}")
        return "\n".join(lines)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP from a recall/precision curve (detections in descending score order)."""
    recall, precision = np.asarray(recall, float), np.asarray(precision, float)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = precision[recall >= t].max() if np.any(recall >= t) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _iou_plus_one(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    iw = np.maximum(np.minimum(gts[:, 2], box[2]) - np.maximum(gts[:, 0], box[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(gts[:, 3], box[3]) - np.maximum(gts[:, 1], box[1]) + 1.0, 0.0)
    inter = iw * ih
    union = (
        (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
        + (gts[:, 2] - gts[:, 0] + 1.0) * (gts[:, 3] - gts[:, 1] + 1.0)
        - inter
    )
    return inter / union


def class_pr(
    detections: Mapping[int, VocDetections],
    ground_truth: Mapping[int, VocGroundTruth],
    label: int,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Recall and precision curves of one class and its number of non-difficult ground truths."""
    gts, npos = {}, 0
    for image_id, gt in ground_truth.items():
        keep = gt.labels == label
        difficult = (
            np.zeros(len(gt.labels), bool) if gt.difficult is None else np.asarray(gt.difficult, bool)
        )[keep]
        gts[image_id] = (np.asarray(gt.boxes_xyxy, float)[keep], difficult, np.zeros(int(keep.sum()), bool))
        npos += int((~difficult).sum())
    entries = [
        (float(s), image_id, np.asarray(b, float))
        for image_id, det in detections.items()
        for b, s, c in zip(det.boxes_xyxy, det.scores, det.labels)
        if int(c) == label
    ]
    entries.sort(key=lambda e: -e[0])  # stable: ties keep input order
    tp, fp = np.zeros(len(entries)), np.zeros(len(entries))
    for k, (_, image_id, box) in enumerate(entries):
        boxes, difficult, taken = gts.get(image_id, (np.zeros((0, 4)), np.zeros(0, bool), np.zeros(0, bool)))
        if len(boxes) == 0:
            fp[k] = 1
            continue
        ious = _iou_plus_one(box, boxes)
        best = int(ious.argmax())
        if ious[best] > iou_threshold:
            if not difficult[best]:
                if taken[best]:
                    fp[k] = 1
                else:
                    tp[k], taken[best] = 1, True
        else:
            fp[k] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / max(npos, 1)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return recall, precision, npos


def evaluate_voc(
    detections: Mapping[int, VocDetections],
    ground_truth: Mapping[int, VocGroundTruth],
    num_classes: int,
    iou_thresholds: tuple[float, ...] = IOU_THRESHOLDS,
) -> VocMetrics:
    """VOC AP per class and threshold, averaged over classes with ground truth.

    Args:
        detections: image id -> detections in original-image pixels (xyxy, 0-based like the ground truth).
        ground_truth: image id -> boxes, labels and ``difficult`` flags. Every evaluated image must be a key.
    """
    ap07 = np.zeros((len(iou_thresholds), num_classes))
    ap_all = np.zeros_like(ap07)
    present = []
    for c in range(num_classes):
        for t, thr in enumerate(iou_thresholds):
            recall, precision, npos = class_pr(detections, ground_truth, c, thr)
            if npos == 0:
                break
            ap07[t, c] = voc_ap(recall, precision, use_07_metric=True)
            ap_all[t, c] = voc_ap(recall, precision, use_07_metric=False)
        else:
            present.append(c)
    if not present:
        return VocMetrics(0.0, 0.0, 0.0, 0.0, {})
    at50 = iou_thresholds.index(0.5) if 0.5 in iou_thresholds else 0
    return VocMetrics(
        ap50_voc07=float(ap07[at50, present].mean()),
        ap50=float(ap_all[at50, present].mean()),
        ap50_95_voc07=float(ap07[:, present].mean()),
        ap50_95=float(ap_all[:, present].mean()),
        per_class_ap50={c: float(ap_all[at50, c]) for c in present},
    )


def ground_truth_from_dataset(dataset: DetectionDataset) -> dict[int, VocGroundTruth]:
    """Ground truth of a :class:`yoloxdet.data.datasets.DetectionDataset`, with VOC ``difficult`` flags when
    the reader kept them (evaluate with ``keep_difficult: true``, the official setting, so difficult objects
    are ignored rather than missing)."""
    out = {}
    for rec in dataset.records:
        difficult = rec.extra.get("difficult")
        out[rec.image_id] = VocGroundTruth(
            rec.boxes_xyxy, rec.labels, difficult if difficult is not None and len(difficult) else None
        )
    return out
