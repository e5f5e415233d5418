"""``make demo`` / ``python -m yoloxdet.demo``: fine-tune YOLOX-Nano on aerial tree crowns on a CPU and
report.

A thin wrapper over the public commands a user would run (``import-weights``, ``train``, ``val``,
``predict``): it prepares the data (see :mod:`yoloxdet.demo.treecrowns`), resolves the COCO-pretrained
weights, runs the commands with the recipe in ``recipe.yaml`` (``recipe_scratch.yaml`` when no weights can be
had), and writes the report (see :mod:`yoloxdet.demo.report`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from ..config import EvalConfig
from . import treecrowns
from .pipeline import (
    DEFAULT_CPU_MINUTES,
    DemoPaths,
    build_report,
    evaluate_sets,
    resolve_initial_weights,
    run_command,
    training_steps,
    write_results,
)

logger = logging.getLogger("yoloxdet.demo")
RECIPE = Path(__file__).with_name("recipe.yaml")  # fine-tuning pretrained weights
SCRATCH_RECIPE = Path(__file__).with_name("recipe_scratch.yaml")  # when no weights can be had


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m yoloxdet.demo", description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--cpu-minutes",
        type=float,
        help=f"training budget in CPU minutes of the training processes (train.budget_clock=cpu): the same "
        f"work however busy the machine (default {DEFAULT_CPU_MINUTES:g}, env DEMO_CPU_MINUTES)",
    )
    budget.add_argument("--minutes", type=float, help="a wall-clock training budget in minutes instead")
    parser.add_argument(
        "--weights",
        default=os.environ.get("DEMO_WEIGHTS"),
        help="initial weights (.pth/.onnx/.pt); default: the official YOLOX-Nano release "
        "(downloaded once), else ../shared/weights/yolox_nano.onnx; 'none' trains from scratch",
    )
    parser.add_argument("--out", default=os.environ.get("DEMO_OUT", "demo_out"), help="output folder")
    parser.add_argument("--max-tiles", type=int, default=0, help="use only this many training tiles (0: all)")
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=64,
        help="training images used to re-estimate BatchNorm statistics of ONNX weights",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="extra training config overrides")
    return parser.parse_args(argv)


step = run_command


def budget_of(args: argparse.Namespace) -> dict:
    """The training budget: minutes on the wall clock, or CPU minutes with ``--cpu-minutes``."""
    if args.minutes is not None:
        return {"minutes": args.minutes, "clock": "wall"}
    if args.cpu_minutes is not None:
        return {"minutes": args.cpu_minutes, "clock": "cpu"}
    return {"minutes": float(os.environ.get("DEMO_CPU_MINUTES", DEFAULT_CPU_MINUTES)), "clock": "cpu"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = DemoPaths(Path(args.out))
    started = time.monotonic()

    wheel = treecrowns.fetch_wheel(paths.cache)
    dataset_yaml = treecrowns.prepare(wheel, paths.data, max_tiles=args.max_tiles)
    budget = budget_of(args)

    initial = resolve_initial_weights(args.weights, paths.cache)
    recipe = RECIPE if initial is not None else SCRATCH_RECIPE
    train_args = [
        str(dataset_yaml),
        "--config",
        str(recipe),
        f"max_minutes={budget['minutes']}",
        f"train.budget_clock={budget['clock']}",
        f"seed={args.seed}",
        f"output_dir={paths.runs}",
        "train.name=treecrowns",
        *args.overrides,
    ]
    if initial is not None:
        step(
            "import weights",
            [
                "import-weights",
                str(initial),
                "--model",
                "yolox-nano",
                "-o",
                str(paths.init),
                "--calibrate",
                str(paths.train_images),
                "--calibrate-images",
                str(args.calibration_images),
                "--seed",
                str(args.seed),
            ],
        )
        train_args.append(f"weights={paths.init}")
    else:
        print("demo: no pretrained weights available; training YOLOX-Nano from scratch", flush=True)
    step("train", ["train", *train_args])

    final = paths.final_checkpoint()
    sites = evaluate_sets(final, treecrowns.write_eval_yamls(paths.data), paths.root / "eval")
    write_results(
        paths.results,
        config=recipe.stem,
        seed=args.seed,
        steps=training_steps(final),
        budget=budget,
        sites=sites,
        checkpoint=final,
    )
    for split in ("val", "test"):  # OSBS + SOAP (other sites) and the held-out YELL strip
        step(
            f"val {split}",
            [
                "val",
                str(final),
                "--data",
                str(dataset_yaml),
                "--split",
                split,
                "-o",
                str(paths.metrics(split)),
                "--no-progress",
            ],
        )
        step(
            f"predict {split}",
            [
                "predict",
                str(final),
                *map(str, paths.split_images(split)),
                "--conf",
                str(EvalConfig.conf_threshold),
                "--no-save",
                "-o",
                str(paths.predictions(split)),
                "--no-progress",
            ],
        )
    # The whole 2472 x 2299 px YELL image: tiles at the training tiles' scale vs one pass shrunk to the input
    # size.
    whole = [str(p) for p in paths.split_images("whole")]
    for name, tiling in (
        ("whole_tiled", ["--tile", str(treecrowns.TileSettings().tile)]),
        ("whole_single", []),
    ):
        step(
            f"predict {name}",
            [
                "predict",
                str(final),
                *whole,
                *tiling,
                "--conf",
                "0.001",
                "--no-save",
                "-o",
                str(paths.predictions(name)),
                "--no-progress",
            ],
        )
    report = build_report(
        paths,
        dataset_yaml,
        initial,
        budget=budget,
        sites=sites,
        wall_minutes=(time.monotonic() - started) / 60,
    )
    print(f"\ndemo report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
