"""Ours (the demo recipe) vs the peer (``bench_finetune_peer.py``), paired: per seed, each fine-tunes
YOLOX-Nano on the tree-crown tiles for the same CPU-time budget in a fresh process, the two taking turns
(the order alternates with the seed), and both are measured by ``yoloxdet val`` on the same held-out sets.

Every run (config, seed, steps, AP50 and AP50:95 per site and pooled) goes to ``OUT/paired_runs.json``; the
table with mean ± sd goes to the ``demo-paired`` section of docs/demo.md.

    python benchmarks/bench_demo_paired.py --seeds 0 1 2 --cpu-minutes 10 --out demo_paired

A lever of our recipe is measured the same way: ``--variant NAME OVERRIDES`` adds a config, our demo with
those extra words (training-config overrides ``key=value``, or demo flags: ``--weights none`` trains from
scratch with the scratch recipe), run in turn with the others for each seed; ``--configs`` picks which configs
run, ``--section`` where their table goes. For instance, layer-wise lr against the recipe:

    python benchmarks/bench_demo_paired.py --configs ours bb01 --section demo-levers \\
        --variant bb01 'train.lr_scales=[backbone.backbone=0.1]'
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _report import write_section

from yoloxdet.demo.pipeline import DEFAULT_CPU_MINUTES
from yoloxdet.demo.treecrowns import EVAL_SETS, EVAL_TITLES
from yoloxdet.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("ours", "peer")


def command(config: str, seed: int, cpu_minutes: float, out: Path, overrides: list[str]) -> list[str]:
    budget = ["--cpu-minutes", str(cpu_minutes), "--seed", str(seed), "--out", str(out)]
    if config == "peer":
        return [sys.executable, str(REPO / "benchmarks" / "bench_finetune_peer.py"), *budget]
    return [sys.executable, "-m", "yoloxdet.demo", *budget, *overrides]


def run_one(
    config: str, seed: int, cpu_minutes: float, root: Path, cache: Path | None, overrides: list[str]
) -> dict:
    out = root / f"{config}_s{seed}"
    if cache is not None:  # share the downloaded wheel and weights between runs
        (out / "cache").parent.mkdir(parents=True, exist_ok=True)
        if not (out / "cache").exists():
            (out / "cache").symlink_to(cache.resolve())
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_WAIT_POLICY": "PASSIVE"}
    argv = command(config, seed, cpu_minutes, out, overrides)
    print(f"== {config} seed {seed}: {shlex.join(argv)}", flush=True)
    with open(out.parent / f"{config}_s{seed}.log", "w") as log:
        subprocess.run(argv, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    result = json.loads((out / "results.json").read_text())
    print(f"   {result['steps']} steps, {json.dumps(result['sites'])}", flush=True)
    return result


def from_scratch(words: list[str]) -> bool:
    """Whether a variant's demo words ask for random initial weights (``--weights none``)."""
    return (
        any(w == "--weights" and nxt == "none" for w, nxt in itertools.pairwise(words))
        or "--weights=none" in words
    )


def mean_sd(values: list[float], digits: int = 3) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def markdown(runs: list[dict], cpu_minutes: float, argv: list[str], variants: dict[str, list[str]]) -> str:
    sites = list(EVAL_SETS)
    head = "| config | seed | steps | " + " | ".join(f"{s} AP50 | {s} AP50:95" for s in sites) + " |"
    rule = "|---" * (3 + 2 * len(sites)) + "|"
    rows = [
        f"| {r['config']} | {r['seed']} | {r['steps']} | "
        + " | ".join(f"{r['sites'][s]['AP50']:.3f} | {r['sites'][s]['AP50_95']:.3f}" for s in sites)
        + " |"
        for r in runs
    ]
    summary = ["| config | runs | steps | " + " | ".join(f"{s} AP50" for s in sites) + " | cross AP50:95 |"]
    summary.append("|---" * (4 + len(sites)) + "|")
    for config in dict.fromkeys(r["config"] for r in runs):
        mine = [r for r in runs if r["config"] == config]
        if not mine:
            continue
        summary.append(
            f"| {config} | {len(mine)} | {mean_sd([r['steps'] for r in mine], 0)} | "
            + " | ".join(mean_sd([r["sites"][s]["AP50"] for r in mine]) for s in sites)
            + f" | {mean_sd([r['sites']['cross']['AP50_95'] for r in mine])} |"
        )
    titles = "; ".join(f"{s}: {EVAL_TITLES[s]}" for s in sites)
    configs = "".join(f" {name}: the demo with `{shlex.join(o)}`." for name, o in variants.items())
    title = "Levers of our recipe" if set(variants) & {r["config"] for r in runs} else "Ours vs the peer"
    length = (
        f"{cpu_minutes:g} CPU-minutes of training each (the process and its data-loader workers)"
        if cpu_minutes
        else "no time budget, the training length set by the configs (`train.epochs`)"
    )
    ran = {r["config"] for r in runs}
    scratch = [name for name in variants if name in ran and from_scratch(variants[name])]
    if scratch and len(scratch) == len(ran):
        start = "trained from random weights (`--weights none`)"
    elif scratch:
        start = f"fine-tuned from the same calibrated COCO Nano ({', '.join(scratch)}: from random weights)"
    else:
        start = "fine-tuned from the same calibrated COCO Nano"
    return "\n".join(
        [
            f"## {title}, paired (written by benchmarks/bench_demo_paired.py)",
            "",
            f"`python benchmarks/bench_demo_paired.py {shlex.join(argv)}`: {length}, {start}, evaluated by "
            "`yoloxdet val` (COCO AP). Sets: " + titles + "." + configs,
            "",
            "Mean ± sd over seeds:",
            "",
            *summary,
            "",
            "Every run:",
            "",
            head,
            rule,
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--cpu-minutes", type=float, default=DEFAULT_CPU_MINUTES, help="training budget of each run"
    )
    parser.add_argument("--out", default="demo_paired", help="folder of the runs")
    parser.add_argument("--cache", help="a folder holding the deepforest wheel (and weights) to reuse")
    parser.add_argument("--docs", default=str(REPO / "docs" / "demo.md"), help="where the table goes")
    parser.add_argument(
        "--variant",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "OVERRIDES"),
        help="a config: the demo with these extra words (shell-quoted: key=value overrides, --weights none)",
    )
    parser.add_argument("--configs", nargs="+", help=f"the configs to run (default: {' '.join(CONFIGS)})")
    parser.add_argument("--section", default="demo-paired", help="the section of --docs to write")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the configs of a seed at the same time (each then meets the same load on a shared machine)",
    )
    args = parser.parse_args(argv)
    variants = {name: shlex.split(overrides) for name, overrides in args.variant}
    configs = args.configs or list(CONFIGS)
    unknown = [c for c in configs if c not in (*CONFIGS, *variants)]
    if unknown:
        parser.error(f"unknown config(s) {unknown}: define them with --variant NAME OVERRIDES")
    if "peer" in configs and not args.cpu_minutes:
        parser.error("the peer trains for its time budget only (0: no steps): give --cpu-minutes > 0")
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    runs: list[dict] = []
    cache = Path(args.cache) if args.cache else None

    def one(config: str, seed: int) -> dict:
        result = run_one(config, seed, args.cpu_minutes, root, cache, variants.get(config, []))
        return {**result, "config": config}

    for k, seed in enumerate(args.seeds):
        order = configs[k % len(configs) :] + configs[: k % len(configs)]  # rotate who goes first
        if args.parallel:
            with ThreadPoolExecutor(len(order)) as pool:
                batches: Iterable[list[dict]] = [list(pool.map(one, order, [seed] * len(order)))]
        else:
            batches = ([one(config, seed)] for config in order)  # written as each run ends
        for batch in batches:
            runs.extend(batch)
            write_json_atomic(root / "paired_runs.json", {"cpu_minutes": args.cpu_minutes, "runs": runs})
            write_section(args.section, markdown(runs, args.cpu_minutes, argv, variants), path=args.docs)
    print(f"runs -> {root / 'paired_runs.json'}, table -> {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
