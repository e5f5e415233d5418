"""``yoloxdet track-eval PRED_DIR GT_DIR``: HOTA, MOTA and IDF1 of MOTChallenge results, by TrackEval."""

from __future__ import annotations

import argparse

HELP = (
    "score MOTChallenge tracker results (PRED_DIR/SEQ.txt) against ground truth: HOTA, MOTA, IDF1 (TrackEval)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred_dir", help="folder with one MOTChallenge result SEQ.txt per sequence")
    parser.add_argument("gt_dir", help="a sequence folder (gt/gt.txt, seqinfo.ini) or a folder of them")
    parser.add_argument("--json", help="also write the scores to this JSON file")


def run(args: argparse.Namespace) -> int:
    from ..io import write_json_atomic
    from . import CLIError

    try:
        from ..track.evaluate import evaluate_mot
    except (
        ModuleNotFoundError
    ) as exc:  # TrackEval requires opencv-python, which clashes with our headless one
        raise CLIError(
            f"track-eval needs TrackEval ({exc}): pip install --no-deps trackeval==1.3.0"
        ) from None

    scores = {name: s.as_percent() for name, s in evaluate_mot(args.pred_dir, args.gt_dir).items()}
    columns = list(next(iter(scores.values())))
    width = max(len(name) for name in scores)
    print(f"{'sequence':<{width}}  " + "  ".join(f"{c:>7}" for c in columns))
    for name, row in scores.items():
        print(
            f"{name:<{width}}  "
            + "  ".join(f"{v:>7.2f}" if isinstance(v, float) else f"{v:>7}" for v in row.values())
        )
    if args.json:
        write_json_atomic(args.json, scores)
    return 0
