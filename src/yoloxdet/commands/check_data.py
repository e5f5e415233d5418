"""``yoloxdet check-data DATASET``: report bad data (naming the file and line / annotation id) and
statistics."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "check a dataset for bad images and labels; print statistics and write them as a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset description YAML (format: coco|voc|yolo, train, val, names)")
    parser.add_argument("--splits", nargs="+", default=None, help="splits to check (default: all described)")
    parser.add_argument("--png", default=None, help="statistics image (default: <dataset>-stats.png here)")
    parser.add_argument(
        "--max-list", type=int, default=200, help="print at most this many problems per split"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes checking images (default: the CPUs)"
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="decode every image fully (slow; finds corruption inside complete files too) "
        "instead of reading headers and end markers",
    )


def run(args: argparse.Namespace) -> int:
    from ..data.checks import check_split, plot_stats
    from ..data.spec import load_dataset_spec

    spec = load_dataset_spec(args.dataset)
    splits = args.splits or list(spec.splits)
    stats, n_errors = {}, 0
    for split in splits:
        _, report = check_split(spec, split, args.workers, decode=args.decode, progress=True)
        stats.update(report.stats)
        n_errors += len(report.errors)
        print(
            f"== {split}: {len(report.errors)} error(s), {len(report.issues) - len(report.errors)} warning(s)"
        )
        for issue in report.issues[: args.max_list]:
            print(f"  {issue}")
        if len(report.issues) > args.max_list:
            print(f"  ... and {len(report.issues) - args.max_list} more (raise --max-list)")
        print(report.stats[split].summary())
    png = Path(args.png) if args.png else Path(f"{Path(args.dataset).stem}-stats.png")
    plot_stats(stats, png)
    print(f"statistics written to {png}")
    return 1 if n_errors else 0
