"""The demo report: metrics at a chosen threshold, a PR curve, pictures of ground truth vs predictions,
report.md.

Everything is computed from the files the public commands wrote (predict's detections JSON, val's metrics
JSON, the training run folder) and the dataset's ground truth, so the report can be rebuilt without re-running
anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..engine.voc_eval import VocDetections, VocGroundTruth, class_pr
from ..io import write_bytes_atomic

GT_COLOR = (80, 220, 60)  # BGR green
PRED_COLOR = (40, 40, 255)  # BGR red


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class PRCurve:
    scores: np.ndarray  # [N] descending
    precision: np.ndarray  # [N]
    recall: np.ndarray  # [N]
    num_gt: int

    def best_f1(self) -> OperatingPoint:
        """The score threshold with the highest F1 (ties: the higher threshold)."""
        if len(self.scores) == 0:
            return OperatingPoint(1.0, 0.0, 0.0, 0.0)
        f1 = 2 * self.precision * self.recall / np.maximum(self.precision + self.recall, 1e-12)
        i = int(np.argmax(f1))
        return OperatingPoint(
            float(self.scores[i]), float(self.precision[i]), float(self.recall[i]), float(f1[i])
        )


def pr_curve(
    detections: dict[int, VocDetections], ground_truth: dict[int, VocGroundTruth], iou_threshold: float = 0.5
) -> PRCurve:
    """Precision and recall after each detection in descending score order, single class 0."""
    recall, precision, num_gt = class_pr(detections, ground_truth, 0, iou_threshold)
    scores = np.sort(np.concatenate([d.scores[d.labels == 0] for d in detections.values()] or [np.zeros(0)]))[
        ::-1
    ]
    return PRCurve(scores.astype(float), precision, recall, num_gt)


def plot_pr(curves: dict[str, PRCurve], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=120)
    for name, curve in curves.items():
        point = curve.best_f1()
        ax.plot(
            curve.recall, curve.precision, label=f"{name} (best F1 {point.f1:.2f} at {point.threshold:.2f})"
        )
        ax.scatter([point.recall], [point.precision], s=18)
    ax.set(
        xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall, IoU 0.5"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_gt_vs_pred(image: np.ndarray, gt_xyxy: np.ndarray, pred_xyxy: np.ndarray) -> np.ndarray:
    """Ground truth in green, predictions in red, with a legend; boxes drawn 1-2 px so small crowns stay
    visible."""
    canvas = image.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 500))
    for boxes, color in ((gt_xyxy, GT_COLOR), (pred_xyxy, PRED_COLOR)):
        for x1, y1, x2, y2 in np.rint(np.asarray(boxes).reshape(-1, 4)).astype(int):
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
    legend = [("ground truth", GT_COLOR), ("prediction", PRED_COLOR)]
    for row, (text, color) in enumerate(legend):
        y = 16 + 18 * row
        cv2.rectangle(canvas, (4, y - 12), (150, y + 4), (0, 0, 0), cv2.FILLED)
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return canvas


def save_png(path: Path, image: np.ndarray) -> Path:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: cannot encode PNG")
    write_bytes_atomic(path, data.tobytes())
    return path


def finite_unit(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


def write_markdown(path: Path, sections: list[str]) -> Path:
    write_bytes_atomic(path, ("\n\n".join(sections) + "\n").encode())
    return path
