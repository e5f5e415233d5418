"""``yoloxdet bench WEIGHTS --formats all --data DATA.yaml``: the options and the run of the all-formats
table."""

from __future__ import annotations

import argparse
from pathlib import Path

from .export_deploy import add_calibration_arguments


def add_formats_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment formats (--formats)")
    group.add_argument(
        "--formats",
        metavar="LIST",
        help="'all' or a comma-separated subset of pytorch,onnx,openvino,ncnn,tensorrt: export to "
        "each, then score (COCO AP on --data) and time it (batch 1 and --batch)",
    )
    group.add_argument(
        "--model-name", help="zoo model name for official weights (.pth/.onnx), e.g. yolox-nano"
    )
    group.add_argument(
        "--no-score",
        action="store_true",
        help="time only, no AP (random zoo weights: their AP means nothing)",
    )
    group.add_argument("--data", metavar="DATA.yaml", help="dataset whose --split is scored (with --formats)")
    group.add_argument("--split", default="val", help="split of --data to score (default val)")
    add_calibration_arguments(
        group, "int8 calibration images (default: --data, its train split when it has one)"
    )
    group.add_argument("--table", default="runs/bench/formats.md", help="where to save the table (markdown)")


def run_formats(args: argparse.Namespace) -> int:
    from ..bench.formats import FORMATS, bench_formats
    from ..data.datasets import build_dataset
    from ..data.loader import decoded_images
    from ..data.spec import load_dataset_spec
    from ..export import ExportMetadata
    from ..io import write_bytes_atomic
    from ..models.fuse import fuse_model
    from ..models.zoo import create_model
    from ..weights import CheckpointInfo, load_model

    known = tuple(dict.fromkeys(f for f, _, _ in FORMATS))
    formats = (
        known if args.formats == "all" else tuple(f.strip() for f in args.formats.split(",") if f.strip())
    )
    unknown = [f for f in formats if f not in known]
    if unknown:
        raise ValueError(f"--formats: unknown {', '.join(unknown)}; choose from all, {', '.join(known)}")
    if not args.data:
        raise ValueError("--formats needs --data DATA.yaml (the images to score)")
    if Path(args.model).exists():
        model, info = load_model(args.model, model_name=args.model_name)
    else:  # a zoo name: random weights (latency does not depend on them)
        model, info = create_model(args.model), CheckpointInfo.default(args.model)
    size = args.size or int(info.input_size[0])
    if size % 32:
        raise ValueError(f"--size {size} must be a multiple of 32")
    dataset = build_dataset(load_dataset_spec(args.data), args.split)
    metadata = ExportMetadata(
        info.model_name, tuple(info.class_names), (size, size), strides=tuple(model.strides)
    )
    report = bench_formats(
        fuse_model(model),
        metadata,
        dataset.to_coco(),
        lambda: decoded_images(dataset.records.image_files()),
        formats=formats,
        calibrate=args.calibrate or args.data,
        calib_images=args.calib_images,
        batch=args.batch if args.batch > 1 else 8,
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
        burst=args.burst,
        score=not args.no_score,
    )
    print(report.format_text())
    write_bytes_atomic(Path(args.table), (report.markdown() + "\n").encode())
    print(f"table -> {args.table}")
    return 0
