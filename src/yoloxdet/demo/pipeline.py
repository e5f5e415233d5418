"""Paths, weight resolution and the report of the tree-crown demo (the glue between the public commands)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..cli import main as yoloxdet
from ..data.datasets import build_dataset
from ..data.spec import load_dataset_spec
from ..engine.voc_eval import VocDetections, VocGroundTruth, evaluate_voc, ground_truth_from_dataset
from ..io import read_image, write_json_atomic
from ..weights import WeightsDownloadError, fetch_official
from . import report
from .treecrowns import EVAL_SETS, EVAL_TITLES, read_voc_boxes

# 10 CPU-minutes of training (the process and its loader workers): the same amount of work whatever else the
# machine runs; ours and the peer are compared at this budget (benchmarks/bench_demo_paired.py)
DEFAULT_CPU_MINUTES = 10.0

logger = logging.getLogger(__name__)
SPLIT_TITLES = {"val": EVAL_TITLES["cross"], "test": EVAL_TITLES["strip"]}


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def data(self) -> Path:
        return self.root / "data" / "treecrowns"

    @property
    def train_images(self) -> Path:
        return self.data / "JPEGImages"

    @property
    def init(self) -> Path:
        return self.root / "init_yolox_nano.pt"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def run_dir(self) -> Path:
        return self.runs / "treecrowns"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def final_checkpoint(self) -> Path:
        """The weights at the deadline (the lr schedule ends there). Not ``best.pt``: that one is chosen by AP
        on the val split, which is also a test set here, so reporting it would flatter the result."""
        path = self.run_dir / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training wrote no checkpoint")
        return path

    def split_stems(self, split: str) -> list[str]:
        image_set = {"val": EVAL_SETS["cross"], "test": EVAL_SETS["strip"], "whole": "whole"}[split]
        return (self.data / "ImageSets" / "Main" / f"{image_set}.txt").read_text().split()

    def split_images(self, split: str) -> list[Path]:
        return [self.train_images / f"{stem}.png" for stem in self.split_stems(split)]

    def metrics(self, split: str) -> Path:
        return self.root / "eval" / f"metrics_{split}.json"

    def predictions(self, split: str) -> Path:
        return self.root / "eval" / f"predict_{split}"

    @property
    def results(self) -> Path:
        """The run's machine-readable summary (see :func:`write_results`)."""
        return self.root / "results.json"


def run_command(title: str, argv: list[str]) -> None:
    """Run one public command in-process, echoing it as the user would type it."""
    print(f"\n$ yoloxdet {' '.join(argv)}", flush=True)
    code = yoloxdet(argv)
    if code != 0:
        raise SystemExit(f"demo: '{title}' failed (exit {code})")


def evaluate_sets(
    checkpoint: Path, eval_yamls: dict[str, Path], out_dir: Path, val_options: Sequence[str] = ()
) -> dict[str, dict[str, float]]:
    """``yoloxdet val`` on each evaluation set (per site and the other sites pooled): COCO AP50 and AP50:95
    by name. The one evaluation of every model the demo and its benchmarks compare; ``val_options`` are more
    words for ``val`` (``--tta hflip``)."""
    sites = {}
    for name, dataset_yaml in eval_yamls.items():
        metrics = out_dir / f"metrics_{name}.json"
        run_command(
            f"val {name}",
            [
                *("val", str(checkpoint), "--data", str(dataset_yaml), "--split", "val"),
                *("-o", str(metrics), "--no-progress", *val_options),
            ],
        )
        coco = json.loads(metrics.read_text())
        sites[name] = {"AP50": coco["AP50"], "AP50_95": coco["AP"]}
    return sites


def training_steps(checkpoint: Path) -> int:
    """Optimizer steps of the run that wrote ``checkpoint`` (a training checkpoint)."""
    from ..engine.checkpoint import load_training_checkpoint

    return int(load_training_checkpoint(checkpoint)["state"]["iteration"])


def write_results(
    path: Path, *, config: str, seed: int, steps: int, budget: dict, sites: dict, checkpoint: Path
) -> Path:
    """One run's summary as JSON: which configuration, seed, steps in the budget, AP per evaluation set, and
    the weights evaluated (relative to the summary's folder, so a benchmark can evaluate them again)."""
    weights = os.path.relpath(checkpoint, path.parent)
    write_json_atomic(
        path,
        {"config": config, "seed": seed, "steps": steps, "budget": budget, "sites": sites,
         "checkpoint": weights},
    )  # fmt: skip
    return path


def shared_weights() -> Path | None:
    """The team's copy of the official ONNX (``$YOLOXDET_SHARED`` or ``../shared`` beside the checkout)."""
    candidates = [Path(os.environ["YOLOXDET_SHARED"])] if "YOLOXDET_SHARED" in os.environ else []
    candidates += [Path.cwd().parent / "shared", Path(__file__).resolve().parents[4] / "shared"]
    for base in candidates:
        path = base / "weights" / "yolox_nano.onnx"
        if path.is_file():
            return path
    return None


def resolve_initial_weights(requested: str | None, cache: Path) -> Path | None:
    """An explicit file, else the official release (downloaded once), else the shared ONNX, else None."""
    if requested:
        if requested.lower() == "none":
            return None
        if not Path(requested).is_file():
            raise FileNotFoundError(f"{requested}: weights file not found")
        return Path(requested)
    try:
        return fetch_official("yolox-nano", cache_dir=cache / "weights")
    except WeightsDownloadError as exc:
        logger.info("%s", exc)
    local = shared_weights()
    if local is None:
        logger.warning("no YOLOX-Nano weights: neither the release download nor ../shared/weights worked")
    return local


def _detections(predict_dir: Path, stems: list[str]) -> dict[int, VocDetections]:
    entries = json.loads((predict_dir / "detections.json").read_text())
    by_stem = {Path(e["image"]).stem: e["detections"] for e in entries["images"]}
    out = {}
    for image_id, stem in enumerate(stems):
        dets = by_stem.get(stem, [])
        out[image_id] = VocDetections(
            np.array([d["box_xyxy"] for d in dets], dtype=float).reshape(-1, 4),
            np.array([d["score"] for d in dets], dtype=float),
            np.array([d["class_id"] for d in dets], dtype=int),
        )
    return out


def build_report(
    paths: DemoPaths,
    dataset_yaml: Path,
    initial: Path | None,
    *,
    budget: dict,
    sites: dict[str, dict[str, float]],
    wall_minutes: float,
) -> Path:
    """Metrics, PR curve, curves from the run folder, GT-vs-prediction pictures and report.md."""
    out = paths.report_dir
    out.mkdir(parents=True, exist_ok=True)
    spec = load_dataset_spec(dataset_yaml)
    curves, summary = {}, {}
    for split in ("val", "test"):
        dataset = build_dataset(spec, split)
        stems = [Path(dataset.load(i).path).stem for i in range(len(dataset))]
        ground_truth = ground_truth_from_dataset(dataset)
        detections = _detections(paths.predictions(split), stems)
        curve = report.pr_curve(detections, ground_truth)
        point = curve.best_f1()
        coco = json.loads(paths.metrics(split).read_text())
        curves[SPLIT_TITLES[split]] = curve
        summary[split] = {
            "images": len(dataset),
            "boxes": curve.num_gt,
            "AP50": coco["AP50"],
            "AP50_95": coco["AP"],
            "threshold": point.threshold,
            "precision": point.precision,
            "recall": point.recall,
            "F1": point.f1,
        }
        for image_id, stem in enumerate(stems[:3]):
            sample = dataset.load(image_id)
            dets = detections[image_id]
            keep = dets.scores >= point.threshold
            picture = report.draw_gt_vs_pred(
                read_image(sample.path), sample.boxes_xyxy, dets.boxes_xyxy[keep]
            )
            report.save_png(out / f"pred_{split}_{stem}.png", picture)
    summary["whole"] = _whole_image(paths, out)
    summary["sites"] = sites
    report.plot_pr(curves, out / "pr_curve.png")
    if (paths.run_dir / "curves.png").is_file():
        shutil.copyfile(paths.run_dir / "curves.png", out / "training_curves.png")
    write_json_atomic(out / "metrics.json", summary)
    return report.write_markdown(out / "report.md", _markdown(summary, initial, budget, wall_minutes, out))


def _whole_image(paths: DemoPaths, out: Path) -> dict:
    """AP50 on the whole YELL image, tiled vs one resized pass (VOC all-point AP: COCO's 100-detection cap
    would bound recall on an image with hundreds of trees), and a picture of the tiled result at its best-F1
    threshold."""
    [stem] = paths.split_stems("whole")
    boxes = read_voc_boxes((paths.data / "Annotations" / f"{stem}.xml").read_bytes(), f"{stem}.xml")
    ground_truth = {0: VocGroundTruth(boxes, np.zeros(len(boxes), dtype=int))}
    tiled, single = (_detections(paths.predictions(name), [stem]) for name in ("whole_tiled", "whole_single"))
    point = report.pr_curve(tiled, ground_truth).best_f1()
    keep = tiled[0].scores >= point.threshold
    picture = report.draw_gt_vs_pred(
        read_image(paths.train_images / f"{stem}.png"), boxes, tiled[0].boxes_xyxy[keep]
    )
    report.save_png(
        out / "whole_tiled.png", cv2.resize(picture, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    )
    return {
        "images": 1,
        "boxes": len(boxes),
        "AP50_tiled": evaluate_voc(tiled, ground_truth, 1).ap50,
        "AP50_single": evaluate_voc(single, ground_truth, 1).ap50,
        "threshold": point.threshold,
        "precision": point.precision,
        "recall": point.recall,
        "F1": point.f1,
    }


def _markdown(summary: dict, initial: Path | None, budget: dict, wall_minutes: float, out: Path) -> list[str]:
    rows = "\n".join(
        f"| {SPLIT_TITLES[s]} | {m['images']} | {m['boxes']} | {m['AP50']:.3f} | {m['AP50_95']:.3f} | "
        f"{m['threshold']:.2f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['F1']:.3f} |"
        for s, m in summary.items()
        if s in SPLIT_TITLES
    )
    whole = summary["whole"]
    pictures = "\n".join(f"![{p.stem}]({p.name})" for p in sorted(out.glob("pred_*.png")))
    start = (
        f"fine-tuned from `{initial}`" if initial else "trained from scratch (no pretrained weights found)"
    )
    return [
        "# yoloxdet demo: tree crowns from the air",
        f"YOLOX-Nano {start}, a training budget of {budget['minutes']:g} {budget['clock']}-clock minutes "
        f"({wall_minutes:.1f} min end to end).",
        "| evaluation set | AP50 | AP50:95 |\n|---|---|---|\n"
        + "\n".join(
            f"| {EVAL_TITLES[name]} | {m['AP50']:.3f} | {m['AP50_95']:.3f} |"
            for name, m in summary["sites"].items()
        ),
        "| test set | images | trees | AP50 | AP50:95 | threshold (best F1) | precision | recall | F1 |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + rows,
        "AP from `yoloxdet val` (COCO, conf 0.001, NMS 0.65); precision/recall/F1 at IoU 0.5 at the "
        "threshold with the best F1 on that set.",
        "![precision-recall](pr_curve.png)\n\n![training curves](training_curves.png)",
        "Ground truth in green, predictions (score >= the best-F1 threshold) in red:\n\n" + pictures,
        "## The whole image\n\n"
        f"The whole YELL image (2472 x 2299 px, {whole['boxes']} trees; its upper part is training data, so "
        "this shows what tiling does, not generalisation): `yoloxdet predict --tile 400` (the training "
        "tiles' scale, 0.25 overlap, plus a full pass for objects larger than the overlap) against one pass "
        "shrunk to the input size. VOC all-point AP50 at conf 0.001:\n\n"
        "| pass | AP50 |\n|---|---|\n"
        f"| tiled | {whole['AP50_tiled']:.3f} |\n| single resized | {whole['AP50_single']:.3f} |\n\n"
        f"Tiled, at its best-F1 threshold {whole['threshold']:.2f} (precision {whole['precision']:.3f}, "
        f"recall {whole['recall']:.3f}), half size:\n\n![whole image, tiled](whole_tiled.png)",
    ]
