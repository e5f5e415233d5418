"""``yoloxdet export WEIGHTS``: write an ONNX or TorchScript file that carries its own preprocessing metadata.

The output runs with ``yoloxdet predict/val OUTPUT`` or ``Detector.from_checkpoint(OUTPUT)`` and nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import CHOICES, ExportConfig, PredictConfig
from .export_deploy import add_deploy_arguments, is_deployment, run_deployment

HELP = "export weights to ONNX (decoded output, dynamic batch and size) or TorchScript, with metadata inside"

SUFFIXES = {
    "onnx": ".onnx",
    "torchscript": ".torchscript",
    "openvino": ".xml",
    "ncnn": ".ncnn.param",
    "tensorrt": ".engine",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("weights", help="our .pt checkpoint, an official .pth (with --model), or a zoo name")
    parser.add_argument("--model", help="zoo model name for official weights, e.g. yolox-s")
    parser.add_argument(
        "--format", choices=sorted(SUFFIXES), default="onnx", help="output format (default onnx)"
    )
    parser.add_argument("-o", "--output", help="output file (default: WEIGHTS name with the format's suffix)")
    parser.add_argument(
        "--layout",
        choices=CHOICES["export.layout"],
        default=ExportConfig.layout,
        help="decoded [B, A, 5+C] cxcywh boxes (default), the official raw layout (tx, ty, tw, th), "
        "or NMS inside the graph: [N, 7] (image, x1, y1, x2, y2, score, class)",
    )
    parser.add_argument(
        "--conf",
        type=float,
        default=PredictConfig.conf_threshold,
        help="score threshold inside the graph (--layout nms)",
    )
    parser.add_argument(
        "--nms",
        type=float,
        default=PredictConfig.nms_iou_threshold,
        help="NMS IoU threshold inside the graph (--layout nms)",
    )
    parser.add_argument("--size", type=int, nargs="+", metavar="PX", help="default input size recorded (H W)")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch size to 1 (ONNX)")
    parser.add_argument(
        "--static-size", action="store_true", help="fix H and W to --size (ONNX; faster export)"
    )
    parser.add_argument(
        "--opset", type=int, default=ExportConfig.opset, help=f"ONNX opset (default {ExportConfig.opset})"
    )
    parser.add_argument("--simplify", action="store_true", help="simplify with onnxslim (ONNX)")
    parser.add_argument(
        "--no-fuse", action="store_true", help="keep BatchNorm layers instead of folding them"
    )
    add_deploy_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..export import ExportMetadata, export_onnx, export_torchscript
    from ..models.fuse import fuse_model
    from ..weights import load_model

    model, info = load_model(args.weights, model_name=args.model)
    size = tuple(info.input_size)
    if args.size:
        if len(args.size) > 2 or any(s % 32 for s in args.size):
            raise ValueError("--size takes one or two values (H W), multiples of 32")
        size = (args.size[0], args.size[-1])
    metadata = ExportMetadata(
        model_name=info.model_name,
        class_names=tuple(info.class_names),
        input_size=(int(size[0]), int(size[1])),
        output_layout=args.layout,
        conf_threshold=args.conf if args.layout == "nms" else 0.0,
        nms_iou_threshold=args.nms if args.layout == "nms" else 0.0,
        strides=tuple(model.strides),
        head=info.head,
        yoloxdet_version=__version__,
    )
    model = model.eval() if args.no_fuse else fuse_model(model)
    stem = Path(args.weights).stem + ("_int8" if args.int8 else "")
    output = Path(args.output or stem + SUFFIXES[args.format])
    if is_deployment(args):
        run_deployment(args, model, metadata, output)
    elif args.format == "onnx":
        export_onnx(
            model,
            output,
            metadata,
            dynamic_batch=not args.static_batch,
            dynamic_size=not args.static_size,
            opset=args.opset,
            simplify=args.simplify,
        )
    else:
        export_torchscript(model, output, metadata)
    print(
        f"wrote {output} ({output.stat().st_size / 2**20:.1f} MB, {args.layout} layout, "
        f"input {size[0]}x{size[1]})"
    )
    return 0
