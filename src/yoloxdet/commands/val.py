"""``yoloxdet val WEIGHTS --images DIR --annotations instances.json``: COCO box AP of a model.

Official evaluation conventions (reference §6.3): conf 0.001, class-aware NMS 0.65, boxes rescaled and not clipped,
categories through the sorted ids, iscrowd ground truth ignored. Prints the summary and a per-class AP table and
saves them as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .predict import add_detector_arguments, detector_from_args

HELP = "evaluate a model on a COCO-format dataset: AP, AP50, AP75, APs/m/l and per-class AP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_detector_arguments(parser, conf=0.001, nms=0.65)
    parser.add_argument("--images", required=True, help="folder holding the images named in the annotations")
    parser.add_argument("--annotations", required=True, help="COCO instances JSON (ground truth)")
    parser.add_argument("-o", "--output", default="runs/val/metrics.json", help="metrics JSON to write")
    parser.add_argument(
        "--save-detections", metavar="JSON", help="also write the COCO-format detections here"
    )
    parser.add_argument(
        "--engine", default="faster", choices=["faster", "pycocotools"], help="COCOeval backend"
    )


def run(args: argparse.Namespace) -> int:
    from ..cli import CLIError
    from ..engine.evaluator import category_names, evaluate_coco, predict_coco_results
    from ..io import write_json_atomic

    gt = _load_ground_truth(Path(args.annotations))
    images = Path(args.images)
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: image folder not found")
    detector = detector_from_args(args)
    num_categories = len(category_names(gt))
    if detector.info.num_classes != num_categories:
        raise CLIError(
            f"{args.weights} predicts {detector.info.num_classes} classes but {args.annotations} has "
            f"{num_categories} categories"
        )
    results = predict_coco_results(detector, gt, images, progress=not args.no_progress)
    if args.save_detections:
        write_json_atomic(args.save_detections, results)
    metrics = evaluate_coco(gt, results, engine=args.engine)
    print(metrics.format())
    report = {
        "weights": str(args.weights),
        "model": detector.info.model_name,
        "input_size": list(detector.input_size),
        "annotations": str(args.annotations),
        "conf_threshold": args.conf,
        "nms_iou_threshold": args.nms,
        "class_agnostic": args.class_agnostic,
        **metrics.to_dict(),
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
