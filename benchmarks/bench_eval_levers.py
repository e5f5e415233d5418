"""Inference levers on the tree-crown runs of ``bench_demo_paired.py``, paired by weights: every run's final
checkpoint is evaluated again by ``yoloxdet val`` with each variant's extra words (``--tta hflip``, ``--size
512``) on the same held-out sets, so a difference between variants is the inference alone (same weights, same
images, same evaluator).

    python benchmarks/bench_eval_levers.py demo_paired --variant hflip '--tta hflip' \\
        --variant flips '--tta flips'

The baseline ``plain`` evaluates the weights as the run did; the table says how far its AP is from the run's
own ``results.json`` (the same evaluation twice). Results go to ``RUNS/eval_levers.json`` and the
``demo-eval-levers`` section of docs/demo.md: mean ± sd over seeds per config and variant, and each variant's
change against ``plain`` per seed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from _report import write_section
from bench_demo_paired import REPO, mean_sd

from yoloxdet.demo import treecrowns
from yoloxdet.demo.pipeline import DemoPaths, evaluate_sets
from yoloxdet.demo.treecrowns import EVAL_SETS, EVAL_TITLES
from yoloxdet.io import write_json_atomic

BASELINE = "plain"
# where bench_finetune_peer.py writes its final weights (runs from before results.json named them)
PEER_CHECKPOINT = "runs/treecrowns/peer_final.pt"


def checkpoint_of(run_dir: Path, result: dict) -> Path:
    """The weights a run evaluated: named in its results.json, or (runs from before it said) the demo's last
    checkpoint or the peer's final one."""
    if "checkpoint" in result:
        return run_dir / result["checkpoint"]
    return run_dir / PEER_CHECKPOINT if result["config"] == "peer" else DemoPaths(run_dir).final_checkpoint()


def evaluate_run(run_dir: Path, result: dict, variants: dict[str, list[str]]) -> dict[str, dict]:
    """AP per evaluation set of the run's final weights under each variant's ``val`` words."""
    yamls = treecrowns.write_eval_yamls(DemoPaths(run_dir).data)
    weights = checkpoint_of(run_dir, result)
    return {
        name: evaluate_sets(weights, yamls, run_dir / f"eval_{name}", words)
        for name, words in variants.items()
    }


def repeat_gap(rows: list[dict], runs: dict[tuple[str, int], dict]) -> float:
    """The largest AP50 difference between the baseline here and the run's own evaluation of the same
    weights."""
    return max(
        abs(r["variants"][BASELINE][s]["AP50"] - runs[r["config"], r["seed"]]["sites"][s]["AP50"])
        for r in rows
        for s in EVAL_SETS
    )


def markdown(rows: list[dict], variants: dict[str, list[str]], argv: list[str], gap: float) -> str:
    sites = list(EVAL_SETS)
    summary = [
        "| config | inference | runs | " + " | ".join(f"{s} AP50" for s in sites) + " | cross AP50:95 |"
    ]
    summary.append("|---" * (4 + len(sites)) + "|")
    for config in dict.fromkeys(r["config"] for r in rows):
        for name in variants:
            mine = [r["variants"][name] for r in rows if r["config"] == config]
            summary.append(
                f"| {config} | {name} | {len(mine)} | "
                + " | ".join(mean_sd([m[s]["AP50"] for m in mine]) for s in sites)
                + f" | {mean_sd([m['cross']['AP50_95'] for m in mine])} |"
            )
    deltas = ["| config | seed | inference | " + " | ".join(f"{s} AP50 change" for s in sites) + " |"]
    deltas.append("|---" * (3 + len(sites)) + "|")
    for r in rows:
        for name in list(variants)[1:]:
            change = [r["variants"][name][s]["AP50"] - r["variants"][BASELINE][s]["AP50"] for s in sites]
            deltas.append(
                f"| {r['config']} | {r['seed']} | {name} | " + " | ".join(f"{d:+.3f}" for d in change) + " |"
            )
    titles = "; ".join(f"{s}: {EVAL_TITLES[s]}" for s in sites)
    described = "".join(f" {name}: `val {shlex.join(words)}`." for name, words in variants.items() if words)
    return "\n".join(
        [
            "## Inference levers on the paired runs (written by benchmarks/bench_eval_levers.py)",
            "",
            f"`python benchmarks/bench_eval_levers.py {shlex.join(argv)}`: each run's final weights "
            "evaluated again by `yoloxdet val` (COCO AP) with each variant's words. Sets: "
            f"{titles}.{described} `{BASELINE}` repeats the runs' own evaluation: largest AP50 difference "
            f"{gap:.4f}.",
            "",
            "Mean ± sd over seeds:",
            "",
            *summary,
            "",
            f"Change against `{BASELINE}`, same weights:",
            "",
            *deltas,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="the --out folder of bench_demo_paired.py (holds paired_runs.json)")
    parser.add_argument(
        "--variant",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "WORDS"),
        help="an inference variant: more words for `yoloxdet val` (shell-quoted, e.g. '--tta hflip')",
    )
    parser.add_argument("--configs", nargs="+", help="only these configs of the runs (default: all)")
    parser.add_argument("--docs", default=str(REPO / "docs" / "demo.md"), help="where the table goes")
    parser.add_argument("--section", default="demo-eval-levers", help="the section of --docs to write")
    args = parser.parse_args(argv)
    if not args.variant:
        parser.error("give at least one --variant NAME WORDS to compare with the runs' own evaluation")
    variants = {BASELINE: [], **{name: shlex.split(words) for name, words in args.variant}}
    root = Path(args.runs)
    runs = json.loads((root / "paired_runs.json").read_text())["runs"]
    by_run = {(r["config"], r["seed"]): r for r in runs}
    rows = []
    for result in runs:
        if args.configs and result["config"] not in args.configs:
            continue
        run_dir = root / f"{result['config']}_s{result['seed']}"
        found = evaluate_run(run_dir, result, variants)
        rows.append({"config": result["config"], "seed": result["seed"], "variants": found})
        crosses = "  ".join(f"{name} cross {sites['cross']['AP50']:.3f}" for name, sites in found.items())
        print(f"{result['config']} seed {result['seed']}: {crosses}", flush=True)
        write_json_atomic(root / "eval_levers.json", {"variants": variants, "runs": rows})
        write_section(args.section, markdown(rows, variants, argv, repeat_gap(rows, by_run)), path=args.docs)
    print(f"runs -> {root / 'eval_levers.json'}, table -> {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
