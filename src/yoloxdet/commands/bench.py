"""``yoloxdet bench [MODEL]``: inference speed per backend, judged against this machine's matmul peak."""

from __future__ import annotations

import argparse
from pathlib import Path

from .bench_formats_cli import add_formats_arguments, run_formats

HELP = (
    "time inference (ms/image, images/s, GFLOP/s vs a measured matmul peak) for eager, fused and ONNX "
    "backends"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        nargs="?",
        default="yolox-s",
        help="zoo name (random weights; default yolox-s) or a checkpoint",
    )
    parser.add_argument("--size", type=int, default=None, help="square input size (default: the model's)")
    parser.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch and onnxruntime (default 1)"
    )
    parser.add_argument(
        "--backends",
        default="eager,fused,onnx",
        help="comma-separated: eager, fused (BN folded + channels_last), compiled (torch.compile), onnx",
    )
    parser.add_argument("--onnx", type=Path, help="time this ONNX file instead of exporting the model")
    parser.add_argument("--iters", type=int, default=10, help="turns per backend (the backends take turns)")
    parser.add_argument(
        "--burst",
        type=int,
        default=3,
        help="calls per turn; all but the first are timed (median reported); default 3",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    add_formats_arguments(parser)


def load_bench_model(source: str, size: int | None):  # -> tuple[YOLOX, str, int]
    """A zoo name gives a randomly initialised model (speed does not depend on weights); files are loaded."""
    from ..models.zoo import create_model, get_spec

    if not Path(source).exists():
        try:
            spec = get_spec(source)
            return create_model(spec.name), spec.name, size or spec.input_size
        except KeyError:
            pass  # not a zoo name: let load_model report what is wrong with it
    from ..weights import load_model

    model, info = load_model(source)
    return model, info.model_name, size or int(info.input_size[0])


def run(args: argparse.Namespace) -> int:
    from ..bench.perf import BACKENDS, bench_model

    if args.formats:
        return run_formats(args)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if min(args.batch, args.threads, args.iters, args.burst) < 1:
        raise ValueError("--batch, --threads, --iters and --burst must be at least 1")
    model, name, size = load_bench_model(args.model, args.size)
    if size % 32:
        raise ValueError(f"--size {size} must be a multiple of 32")
    report = bench_model(
        model,
        model_name=name,
        input_size=size,
        batch=args.batch,
        threads=args.threads,
        backends=backends,
        warmup=args.warmup,
        iters=args.iters,
        burst=args.burst,
        onnx_path=args.onnx,
    )
    print(report.format())
    return 0
