"""``yoloxdet val WEIGHTS --images DIR --annotations instances.json`` or ``yoloxdet val WEIGHTS --data
DATASET.yaml [--split val]``: COCO box AP of a model, plus VOC AP for Pascal VOC datasets.

Official evaluation conventions (reference §6.3): conf 0.001, class-aware NMS 0.65, boxes rescaled and not
clipped, categories through the sorted ids, iscrowd ground truth ignored. Prints the summary and a per-class
AP table and saves them as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data.datasets import DetectionDataset
    from ..engine.voc_eval import VocMetrics

from ..config import EvalConfig
from . import CLIError
from .predict import add_detector_arguments, detector_from_args

HELP = "evaluate a model on a COCO-format dataset: AP, AP50, AP75, APs/m/l and per-class AP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_detector_arguments(parser, EvalConfig.conf_threshold, EvalConfig.nms_iou_threshold, EvalConfig.batch)
    parser.add_argument("--images", help="folder holding the images named in the annotations")
    parser.add_argument("--annotations", help="COCO instances JSON (ground truth)")
    parser.add_argument(
        "--data",
        metavar="DATASET.yaml",
        help="a dataset description (COCO, VOC or YOLO txt) instead of --images/--annotations",
    )
    parser.add_argument("--split", default="val", help="split of --data to evaluate (default val)")
    parser.add_argument("-o", "--output", default="runs/val/metrics.json", help="metrics JSON to write")
    parser.add_argument(
        "--save-detections", metavar="JSON", help="also write the COCO-format detections here"
    )
    parser.add_argument(
        "--engine", default="faster", choices=["faster", "pycocotools"], help="COCOeval backend"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes decoding images while the model runs (default: the CPUs but one)",
    )


def run(args: argparse.Namespace) -> int:
    from ..data.loader import decoded_images
    from ..engine.evaluator import category_names, evaluate_coco, predict_coco_results
    from ..io import write_json_atomic

    timings, start = {}, time.perf_counter()
    if args.data is not None:
        if args.images or args.annotations:
            raise CLIError("give either --data or --images with --annotations, not both")
        from ..data.datasets import build_dataset
        from ..data.spec import load_dataset_spec

        spec = load_dataset_spec(args.data)
        dataset = build_dataset(spec, args.split)
        gt, source = dataset.to_coco(), f"{args.data} [{args.split}]"
        files = dataset.records.image_files()
    else:
        if not (args.images and args.annotations):
            raise CLIError("give --images and --annotations (a COCO instances JSON), or --data DATASET.yaml")
        spec, dataset, gt, source = (
            None,
            None,
            _load_ground_truth(Path(args.annotations)),
            str(args.annotations),
        )
        if not Path(args.images).is_dir():
            raise FileNotFoundError(f"{args.images}: image folder not found")
        files = [
            (info["id"], Path(args.images) / info.get("file_name", f"{int(info['id']):012}.jpg"))
            for info in gt["images"]
        ]
    timings["ground_truth"] = time.perf_counter() - start
    detector = detector_from_args(args)
    num_categories = len(category_names(gt))
    if detector.info.num_classes != num_categories:
        raise CLIError(
            f"{args.weights} predicts {detector.info.num_classes} classes but {source} has "
            f"{num_categories} categories"
        )
    images = decoded_images(files, args.workers)  # decoded in loader processes while the model runs
    results = predict_coco_results(detector, gt, images, progress=not args.no_progress, timings=timings)
    if args.save_detections:
        write_json_atomic(args.save_detections, results)
    start = time.perf_counter()
    metrics = evaluate_coco(gt, results, engine=args.engine)
    timings["coco_eval"] = time.perf_counter() - start
    print(metrics.format())
    print("time (s): " + "  ".join(f"{stage} {seconds:.2f}" for stage, seconds in timings.items()))
    report = {
        "weights": str(args.weights),
        "model": detector.info.model_name,
        "input_size": list(detector.input_size),
        "annotations": source,
        "conf_threshold": args.conf,
        "nms_iou_threshold": args.nms,
        "class_agnostic": args.class_agnostic,
        "tta": args.tta,
        **metrics.to_dict(),
        "timing_s": {stage: round(seconds, 3) for stage, seconds in timings.items()},
    }
    if dataset is not None and spec.format == "voc":
        voc = _voc_metrics(dataset, results)
        print(voc.summary(dataset.names))
        report["voc"] = {
            "AP50_voc07": voc.ap50_voc07,
            "AP50": voc.ap50,
            "AP50_95_voc07": voc.ap50_95_voc07,
            "AP50_95": voc.ap50_95,
            "per_class_AP50": {dataset.names[c]: ap for c, ap in voc.per_class_ap50.items()},
        }
    write_json_atomic(args.output, report)
    print(f"metrics -> {args.output}")
    return 0


def _load_ground_truth(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        gt = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    missing = [
        key for key in ("images", "annotations", "categories") if not isinstance(gt, dict) or key not in gt
    ]
    if missing:
        raise ValueError(f"{path}: not a COCO instances file (missing {', '.join(missing)})")
    return gt


def _voc_metrics(dataset: DetectionDataset, results: list[dict]) -> VocMetrics:
    """VOC07 11-point and all-point AP (IoU 0.5 and 0.50:0.95) from the COCO-format detections."""
    import numpy as np

    from ..engine.voc_eval import VocDetections, evaluate_voc, ground_truth_from_dataset

    label_of = {cid: i for i, cid in enumerate(dataset.category_ids)}
    per_image: dict[int, list[dict]] = {rec.image_id: [] for rec in dataset.records}
    for r in results:
        per_image[int(r["image_id"])].append(r)
    detections = {}
    for image_id, rows in per_image.items():
        boxes = np.array([r["bbox"] for r in rows], dtype=float).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        detections[image_id] = VocDetections(
            boxes,
            np.array([r["score"] for r in rows], dtype=float),
            np.array([label_of[r["category_id"]] for r in rows], dtype=int),
        )
    return evaluate_voc(detections, ground_truth_from_dataset(dataset), dataset.num_classes)
