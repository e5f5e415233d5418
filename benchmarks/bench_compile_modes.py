"""Which ``torch.compile`` set-up the ``compiled`` inference path uses: plain Inductor vs Inductor ``freezing``.

Writes the ``compile-modes`` section of docs/benchmarks.md. All rows run the same BN-folded channels_last copy
of a zoo model (random weights) on the same channels_last 0-255 batch, taking turns in bursts
(:func:`time_interleaved`). Freezing is switched on through ``torch._inductor.config`` during the first
(compiling) call: passing it as ``torch.compile(..., options={"freezing": True})`` left the generated code
without pre-packed convolutions in torch 2.14, so it is not offered as a row of its own.

    # yolox-s@640 and yolox-nano@416, batch 1, 2 threads
    python benchmarks/bench_compile_modes.py
"""  # noqa: E501 - the first line is the argparse description (__doc__.splitlines()[0]); kept whole

from __future__ import annotations

import argparse
import copy
import platform
import sys
from pathlib import Path

import torch
import torch._inductor.config as inductor_config

from yoloxdet.bench.perf import median, time_interleaved
from yoloxdet.models.fuse import optimize_for_inference
from yoloxdet.models.zoo import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

DEFAULT_CASES = [("yolox-s", 640), ("yolox-nano", 416)]


def time_modes(name: str, size: int, args: argparse.Namespace) -> dict[str, float]:
    """Median ms per batch of: the fused eager copy, plain Inductor, Inductor with freezing."""
    torch.set_num_threads(args.threads)
    fused = optimize_for_inference(create_model(name).eval())
    images = (
        torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 255
    ).contiguous(memory_format=torch.channels_last)
    plain = torch.compile(copy.deepcopy(fused), dynamic=False)
    frozen = torch.compile(copy.deepcopy(fused), dynamic=False)
    with torch.inference_mode():
        plain(images)
        with inductor_config.patch(freezing=True):  # read when the first call compiles
            frozen(images)
        runners = {
            "fused (eager)": lambda: fused(images),
            "inductor": lambda: plain(images),
            "inductor + freezing": lambda: frozen(images),
        }
        times = time_interleaved(runners, warmup=args.warmup, iters=args.iters, burst=args.burst)
    return {mode: 1000 * median(seconds) for mode, seconds in times.items()}


def markdown(results: list[tuple[str, int, dict[str, float]]], args: argparse.Namespace) -> str:
    lines = [
        "## torch.compile modes (`benchmarks/bench_compile_modes.py`)",
        "",
        f"Written by `python benchmarks/bench_compile_modes.py` on "
        f"{platform.machine()}, "
        f"torch {torch.__version__}, batch {args.batch}, {args.threads} threads, median of "
        f"{args.iters * max(args.burst - 1, 1)} timed calls; all rows of a model take turns. The `compiled` "
        "inference path (`--compile`) is the `inductor` row: freezing has to be switched on globally while "
        "the first "
        "call compiles, so it is worth it only if it is faster by more than this machine's run-to-run noise.",
        "",
        "| model | size | mode | ms/image | x fused |",
        "|---|---|---|---|---|",
    ]
    for name, size, ms in results:
        for mode, value in ms.items():
            lines.append(
                f"| {name} | {size} | {mode} | {value / args.batch:.1f} | {value / ms['fused (eager)']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10, help="turns per mode")
    parser.add_argument(
        "--burst", type=int, default=3, help="calls per turn; the first of each is not counted"
    )
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    results = []
    for name, size in DEFAULT_CASES:
        ms = time_modes(name, size, args)
        print(
            f"{name}@{size}: " + ", ".join(f"{mode} {value:.1f} ms" for mode, value in ms.items()), flush=True
        )
        results.append((name, size, ms))
    print(f"wrote {write_section('compile-modes', markdown(results, args))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
