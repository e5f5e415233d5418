"""``yoloxdet ablate DATASET.yaml --budget-iters 300``: train a list of variants under one budget and compare
them.

Variants come from ``--variants FILE.yaml`` (``variants: [{name, description, overrides: {key: value}}]``) or
default to the YOLOX roadmap (``--print-variants`` shows it as YAML to copy and edit). Trailing ``key=value``
overrides apply to every variant. The report (summary.md/.csv/.json, curve_<metric>.png) goes to ``-o``.
"""

from __future__ import annotations

import argparse

from . import CLIError

HELP = "train named variants (default: the YOLOX roadmap) under one budget and seed; table and curves report"
TRAILING_ITEMS = "items"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "items",
        nargs="*",
        metavar="DATASET.yaml | key=value",
        help="the dataset description, then overrides for every variant (e.g. batch=16)",
    )
    parser.add_argument("--variants", metavar="FILE", help="variants YAML (default: the roadmap)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-iters",
        type=int,
        default=0,
        metavar="N",
        help="optimizer steps per variant (rounded up to whole epochs)",
    )
    budget.add_argument(
        "--budget-minutes", type=float, default=0.0, metavar="M", help="wall-clock minutes per variant"
    )
    parser.add_argument("--model", default="yolox-nano", help="model zoo name (default yolox-nano)")
    parser.add_argument(
        "--size", type=int, default=320, help="square train and eval input size (default 320)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed shared by every variant")
    parser.add_argument("-o", "--output", default="runs/ablate", help="report folder (default runs/ablate)")
    parser.add_argument("--print-variants", action="store_true", help="print the variants as YAML and exit")
    parser.add_argument("--progress", action="store_true", help="progress bars while training")


def run(args: argparse.Namespace) -> int:
    from ..experiments.ablate import Budget, base_config, load_variants, run_ablation, variants_yaml
    from .train import split_items

    variants = load_variants(args.variants)
    if args.print_variants:
        print(variants_yaml(variants), end="")
        return 0
    dataset, overrides = split_items(args.items)
    if dataset is None:
        raise CLIError("ablate needs DATASET.yaml (a dataset description)")
    if args.budget_iters <= 0 and args.budget_minutes <= 0:
        raise CLIError("give a budget: --budget-iters N or --budget-minutes M")
    budget = Budget(iterations=args.budget_iters, minutes=args.budget_minutes)
    base = base_config(
        dataset, budget, overrides, model=args.model, size=args.size, seed=args.seed, output_dir=args.output
    )
    results = run_ablation(base, variants, progress=args.progress)
    for result in results:
        print(
            f"{result.name:28s} AP {result.final('AP'):.4f}  AP50 {result.final('AP50'):.4f}  "
            f"{result.iterations} it  {result.wall_s:.0f} s  assign {result.assign_ms():.2f} ms/it"
        )
    print(f"report: {args.output}/summary.md and curve_*.png")
    return 0
