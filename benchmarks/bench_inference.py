"""Inference speed: our PyTorch paths and onnxruntime vs pixeltable-yolox eager, and vs the compute bound.

Writes the ``inference`` section of docs/benchmarks.md. The compute bound of a model is its GFLOPs divided by
the float32 matmul GFLOP/s measured in the same run with the same thread count (the matmul timed in turns with
the models). Every backend runs the same random weights (our state dict loaded into the peer) on the same
random 0-255 images, output decoded to ``[B, A, 5 + C]``; NMS is not timed (it depends on the weights).

    python benchmarks/bench_inference.py          # yolox-s@640, nano@416, tiny@416; batch 1, 2 threads
    python benchmarks/bench_inference.py --model yolox-s --size 640 --iters 30
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from yoloxdet.bench.perf import BenchReport, bench_model
from yoloxdet.models.zoo import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CASES = [("yolox-s", 640), ("yolox-nano", 416), ("yolox-tiny", 416)]
GOALS = {"fused": 0.75, "compiled": 0.75, "onnx": 0.65}  # time as a fraction of pixeltable-yolox eager
BOUND_GOAL = 1.3  # time as a multiple of the compute bound


def peer_runner(model: torch.nn.Module, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """pixeltable-yolox eager, run as its own demo does (eval, no_grad, decode in the head), same weights."""
    from yolox.config import YoloxConfig

    peer = YoloxConfig.get_named_config(name.replace("-", "_")).get_model().eval()
    peer.load_state_dict(model.state_dict(), strict=True)

    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return peer(images)

    return run


def bench_case(name: str, size: int, args: argparse.Namespace) -> BenchReport:
    model = create_model(name).eval()
    report = bench_model(
        model,
        model_name=name,
        input_size=size,
        batch=args.batch,
        threads=args.threads,
        backends=("eager", "fused", "onnx") if args.no_compile else ("eager", "fused", "compiled", "onnx"),
        warmup=args.warmup,
        iters=args.iters,
        burst=args.burst,
        others={"pixeltable": peer_runner(model, name)},
    )
    print(report.format(), flush=True)
    return report


def markdown(reports: list[BenchReport], args: argparse.Namespace) -> str:
    lines = [
        "## Inference (CPU)",
        "",
        f"Written by `benchmarks/bench_inference.py` on {platform.machine()}, "
        f"torch {torch.__version__}, median of {args.iters * max(args.burst - 1, 1)} timed calls "
        f"after {args.warmup} warm-up calls. "
        "`fused` = BN folded + channels_last + inference_mode; `compiled` = fused + torch.compile "
        "(Inductor; `Detector.from_checkpoint(..., compile=True)`, `yoloxdet predict --compile`); "
        "`onnx` = our export (BN folded, fixed size) in "
        "onnxruntime; `pixeltable` = pixeltable-yolox 0.4.3 eager (official numerics). "
        "All rows of a model take turns, so machine load falls on them alike; each turn is `--burst` "
        "calls in a row and its first call is not counted (it runs with the caches the previous backend "
        "left: a model called again and again does not pay that). `x bound` = time / "
        "(model GFLOPs / matmul GFLOP/s), the matmul (1024x1024, float32) taking its turns among the rows "
        "and summarised by the same median. Goals: our PyTorch path (fused or compiled) <= 0.75x pixeltable, "
        "onnx <= 0.65x pixeltable, <= 1.3x bound.",
        "",
        "| model | size | batch | threads | backend | ms/image | images/s | x pixeltable | x bound | "
        "GFLOPs | matmul GFLOP/s | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        peer_ms = next(r.ms_per_image for r in report.rows if r.backend == "pixeltable")
        command = (
            f"`python benchmarks/bench_inference.py --model {report.model_name} --size {report.input_size} "
            f"--batch {report.batch} --threads {report.threads} --iters {args.iters} --burst {args.burst}"
            f"{' --no-compile' if args.no_compile else ''}`"
        )
        for row in report.rows:
            ratio = row.ms_per_image / peer_ms
            goal = GOALS.get(row.backend)
            mark = "" if goal is None else (" ✓" if ratio <= goal else " ✗")
            bound_mark = "" if goal is None else (" ✓" if row.times_bound <= BOUND_GOAL else " ✗")
            lines.append(
                f"| {report.model_name} | {report.input_size} | {report.batch} | {report.threads} "
                f"| {row.backend} "
                f"| {row.ms_per_image:.2f} | {row.images_per_s:.2f} | {ratio:.2f}{mark} "
                f"| {row.times_bound:.2f}{bound_mark} "
                f"| {report.gflops_per_image:.2f} | {report.peak_gflops:.1f} | {command} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="one zoo model (default: yolox-s@640, yolox-nano@416, yolox-tiny@416)"
    )
    parser.add_argument("--size", type=int, help="input size for --model (default: the model's)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=30, help="turns per backend")
    parser.add_argument(
        "--burst",
        type=int,
        default=3,
        help="calls per turn; the first of each is not counted (caches cold from the previous backend)",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="leave out the torch.compile row (saves ~15 s of compiling per model)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.model:
        from yoloxdet.models.zoo import get_spec

        cases = [(get_spec(args.model).name, args.size or get_spec(args.model).input_size)]
    else:
        cases = DEFAULT_CASES
    reports = [bench_case(name, size, args) for name, size in cases]
    text = markdown(reports, args)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('inference', text, REPO / 'docs' / 'benchmarks.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
