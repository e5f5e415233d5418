"""The deployment options of ``yoloxdet export``: ``--format openvino|ncnn|tensorrt``, ``--int8`` and
calibration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ExportConfig

if TYPE_CHECKING:
    from torch import nn

    from ..export import ExportMetadata

DEPLOY_ONLY_FORMATS = ("openvino", "ncnn", "tensorrt")


def add_calibration_arguments(group: argparse._ArgumentGroup, calibrate_help: str) -> None:
    """``--calibrate`` and ``--calib-images``, shared by ``export --int8`` and ``bench --formats``."""
    group.add_argument("--calibrate", metavar="DATA_OR_IMAGES", help=calibrate_help)
    group.add_argument(
        "--calib-images",
        type=int,
        default=ExportConfig.calib_images,
        help=f"number of calibration images (default {ExportConfig.calib_images})",
    )


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment (int8, OpenVINO, ncnn, TensorRT)")
    group.add_argument(
        "--int8", action="store_true", help="post-training int8 (onnx, openvino, tensorrt); needs --calibrate"
    )
    add_calibration_arguments(
        group, "calibration images: a folder, a glob, or a dataset YAML (its train split)"
    )
    group.add_argument(
        "--int8-quantizer",
        choices=("nncf", "ort"),
        default="nncf",
        help="--format onnx --int8: NNCF post-training quantisation (default; keeps the AP, but onnxruntime "
        "runs it slower than fp32) or onnxruntime's quantize_static (int8 kernels in onnxruntime: "
        "YOLOX-S ~0.46x fp32 time; 1-2 AP lost on the official Nano; quantisation-aware fine-tuning, "
        "`yoloxdet train ... train.quant=qat`, won back 0.7 AP of it)",
    )
    group.add_argument(
        "--calib-method",
        choices=("minmax", "entropy", "percentile"),
        default="minmax",
        help="onnxruntime calibrator for --int8-quantizer ort (default minmax)",
    )
    group.add_argument(
        "--int8-report",
        metavar="JSON",
        help="write a per-layer int8 sensitivity report (SQNR per conv; --format onnx)",
    )
    group.add_argument("--fp16", action="store_true", help="fp16 engine (--format tensorrt)")


def is_deployment(args: argparse.Namespace) -> bool:
    return args.format in DEPLOY_ONLY_FORMATS or args.int8


def run_deployment(
    args: argparse.Namespace, model: nn.Module, metadata: ExportMetadata, output: Path
) -> Path:
    from ..export.formats import Int8Options, export_deployment

    if args.int8 and not args.calibrate:
        raise ValueError("--int8 needs --calibrate DATA_OR_IMAGES (a folder, a glob or a dataset YAML)")
    if args.calibrate and not args.int8:
        raise ValueError("--calibrate is for --int8 exports; add --int8")
    if args.layout != "decoded":  # ncnn files are always raw layout inside; their backend decodes
        raise ValueError(f"--layout {args.layout} is not available with --int8/--format {args.format}")
    int8 = None
    if args.int8:
        report = Path(args.int8_report) if args.int8_report else None
        int8 = Int8Options(args.calibrate, args.calib_images, args.int8_quantizer, args.calib_method, report)
    return export_deployment(model, output, metadata, args.format, int8=int8, fp16=args.fp16)
