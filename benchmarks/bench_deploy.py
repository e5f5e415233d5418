"""Deployment formats: int8 accuracy of the official YOLOX-Nano on coco128, and every format's latency.

Writes the ``deploy`` section of docs/benchmarks.md. For each case it runs what ``yoloxdet bench WEIGHTS
--formats all`` runs (:func:`yoloxdet.bench.formats.bench_formats`): export to each installed format, COCO AP
on coco128 (official Nano only: the other models have random weights, whose AP means nothing, so they are
timed only) and latency at batch 1 and batch N with all formats taking turns (median of the timed calls).
``--ort-methods`` adds the AP of onnxruntime's own ``quantize_static`` calibrators (MinMax, Entropy,
Percentile) next to NNCF's.

    python benchmarks/bench_deploy.py                                  # nano (AP + latency), tiny@416, s@640
    python benchmarks/bench_deploy.py --cases yolox-nano --ort-methods
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from yoloxdet.bench.formats import FormatsReport, bench_formats
from yoloxdet.engine.evaluator import evaluate_coco, folder_samples, predict_coco_results
from yoloxdet.export import ExportMetadata, export_onnx
from yoloxdet.export.calibration import CalibrationImages
from yoloxdet.models.fuse import fuse_model
from yoloxdet.models.zoo import create_model, get_spec
from yoloxdet.weights import CheckpointInfo, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLOXDET_SHARED", REPO.parent / "shared"))
COCO128 = SHARED / "data" / "coco128"
NANO_ONNX = SHARED / "weights" / "yolox_nano.onnx"
SIZES = {"yolox-nano": 416, "yolox-tiny": 416, "yolox-s": 640}


def _model(name: str) -> tuple[torch.nn.Module, CheckpointInfo]:
    if name == "yolox-nano":
        return load_model(NANO_ONNX, model_name=name)
    return create_model(name), CheckpointInfo.default(name)


def run_case(name: str, gt: dict, args: argparse.Namespace) -> FormatsReport:
    model, info = _model(name)
    size = SIZES.get(name, get_spec(name).input_size)
    meta = ExportMetadata(
        info.model_name, tuple(info.class_names), (size, size), strides=tuple(model.strides)
    )
    report = bench_formats(
        fuse_model(model),
        meta,
        gt,
        lambda: folder_samples(gt, COCO128 / "images"),
        # timed-only cases: the number of calibration images changes the scales, not the speed
        calibrate=COCO128 / "images",
        calib_images=args.calib_images if name == "yolox-nano" else 16,
        batch=args.batch,
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
        burst=args.burst,
        score=name == "yolox-nano",
    )
    print(report.format_text(), flush=True)
    return report


def ort_methods(gt: dict, args: argparse.Namespace) -> dict[str, float]:
    """AP of the Nano quantised by onnxruntime's quantize_static with each calibrator (and NNCF, same
    images)."""
    from yoloxdet.export.int8 import quantize_onnx
    from yoloxdet.inference.api import Detector

    model, info = _model("yolox-nano")
    meta = ExportMetadata(info.model_name, tuple(info.class_names), (416, 416), strides=tuple(model.strides))
    aps = {}
    with tempfile.TemporaryDirectory() as workdir:
        fp32 = export_onnx(fuse_model(model), Path(workdir) / "fp32.onnx", meta, dynamic_size=False)
        calibration = CalibrationImages(COCO128 / "images", (416, 416), args.ort_calib_images)
        for method in ("minmax", "entropy", "percentile"):
            out = quantize_onnx(
                fp32, Path(workdir) / f"{method}.onnx", calibration, quantizer="ort", method=method
            )
            detector = Detector.from_checkpoint(out, conf_threshold=0.001, nms_iou_threshold=0.65)
            aps[f"ort {method}"] = evaluate_coco(
                gt, predict_coco_results(detector, gt, COCO128 / "images", progress=False)
            ).ap
            print(method, aps[f"ort {method}"], flush=True)
    return aps


def markdown(reports: list[FormatsReport], methods: dict[str, float] | None, args: argparse.Namespace) -> str:
    command = "python benchmarks/bench_deploy.py " + " ".join(sys.argv[1:])
    lines = [
        "## Deployment formats (CPU)",
        "",
        f"Written by `{command.strip()}` on {platform.machine()}, torch "
        f"{torch.__version__}, {args.threads} threads. Each table is `yoloxdet bench WEIGHTS --formats all` "
        "(what `yoloxdet.bench.formats.bench_formats` does): the model exported once to a fixed-size fp32 "
        "ONNX file and from there to every installed format; AP = COCO AP50:95 on the 128 coco128 images "
        "(official evaluation settings), AP drop against PyTorch fp32; ms/image = median of the timed calls, "
        f"all formats taking turns ({args.iters} rounds of {args.burst} calls, the first of each turn not "
        "counted); x onnx fp32 = batch-1 time over fp32 onnxruntime's. int8 everywhere: per-channel int8 "
        f"weights, uint8 activations, calibrated on {args.calib_images} coco128 images (16 for the "
        "timed-only models) letterboxed as at inference (coco128 is also the evaluation set: no other COCO "
        "images are available offline), the prediction convs and the decode kept float. The machine is "
        "shared with other jobs (load average well above its 2 cores "
        "during these runs), so the latencies are noisy; the ratios within one table, measured in turns, are "
        "the figures to read. YOLOX-Tiny and YOLOX-S have random weights (only Nano's official weights are "
        "available offline): timed, not scored. TensorRT needs a CUDA GPU: skipped here, untested. "
        "`onnx int8` (NNCF's Q/DQ placement: conv inputs quantised, conv outputs float; the export default) "
        "is not fused by onnxruntime into int8 kernels (its optimised graph keeps DequantizeLinear -> float "
        "Conv), so it is slower than fp32; `onnx int8-ort` (onnxruntime's quantize_static, the stem's output "
        "kept float, mean-of-extremes ranges: `--int8-quantizer ort`) is fused into QLinearConv/"
        "QLinearSigmoid/QLinearMul int8 kernels; `openvino int8` runs int8 kernels.",
        "",
    ]
    for report in reports:
        lines += [
            f"### {report.model_name} @ {report.input_size} (batch N = {report.batch})",
            "",
            report.markdown(),
            "",
        ]
    if methods:
        nano = next((r for r in reports if r.model_name == "yolox-nano"), None)
        ref = nano._reference("pytorch fp32").ap if nano else None
        lines += [
            "### int8 quantisers on the official Nano @ 416 (coco128 AP)",
            "",
            f"onnxruntime's own `quantize_static` (QDQ, per-channel weights, same float tail), "
            f"{args.ort_calib_images} calibration images, against the tables' NNCF int8 rows:",
            "",
            "| quantiser | AP | AP drop |",
            "|---|---|---|",
        ]
        for name, ap in methods.items():
            drop = f"{100 * (ref - ap):+.1f}" if ref is not None else "-"
            lines.append(f"| {name} | {100 * ap:.1f} | {drop} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="yolox-nano,yolox-tiny,yolox-s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--burst", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--calib-images", type=int, default=128)
    parser.add_argument("--ort-methods", action="store_true", help="also score onnxruntime's calibrators")
    parser.add_argument("--ort-calib-images", type=int, default=32)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    gt = json.loads((COCO128 / "annotations" / "instances.json").read_text())
    reports = [run_case(name.strip(), gt, args) for name in args.cases.split(",") if name.strip()]
    methods = ort_methods(gt, args) if args.ort_methods else None
    text = markdown(reports, methods, args)
    print(text)
    if not args.no_write:
        write_section("deploy", text, REPO / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
