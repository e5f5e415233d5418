"""HOTA, MOTA and IDF1 of tracker results against MOTChallenge ground truth, computed by TrackEval (the
benchmark's own code, ``pip install trackeval``), not re-implemented here.

Layouts: ``gt_dir`` is one sequence folder (``gt/gt.txt`` + ``seqinfo.ini``) or a folder of them; ``pred_dir``
holds one ``SEQ.txt`` per sequence. TrackEval's MOT17 rules apply: ground truth of class 1 (pedestrian) with
conf 1 is scored; our generated sequences write every object that way.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trackeval

from .mot import read_seqinfo

logger = logging.getLogger(__name__)

COMBINED = "COMBINED_SEQ"


@dataclass(frozen=True)
class TrackingScores:
    """The headline metrics of one sequence (or of all combined), as fractions in [0, 1]."""

    hota: float
    deta: float
    assa: float
    mota: float
    idf1: float
    id_switches: int
    num_gt_ids: int
    num_pred_ids: int

    def as_percent(self) -> dict[str, float]:
        return {
            "HOTA": 100 * self.hota,
            "DetA": 100 * self.deta,
            "AssA": 100 * self.assa,
            "MOTA": 100 * self.mota,
            "IDF1": 100 * self.idf1,
            "IDSW": self.id_switches,
            "GT IDs": self.num_gt_ids,
            "IDs": self.num_pred_ids,
        }


def sequence_dirs(gt_dir: str | Path) -> dict[str, Path]:
    """Sequence name -> folder: ``gt_dir`` itself when it has ``gt/gt.txt``, else its sub-folders that do."""
    gt_dir = Path(gt_dir)
    if (gt_dir / "gt" / "gt.txt").is_file():
        return {gt_dir.name: gt_dir}
    found = (
        {p.name: p for p in sorted(gt_dir.iterdir()) if (p / "gt" / "gt.txt").is_file()}
        if gt_dir.is_dir()
        else {}
    )
    if not found:
        raise FileNotFoundError(f"{gt_dir}: no MOTChallenge sequence (a folder with gt/gt.txt) found")
    return found


def evaluate_mot(pred_dir: str | Path, gt_dir: str | Path) -> dict[str, TrackingScores]:
    """Scores per sequence and under ``"COMBINED_SEQ"`` for all of them together.

    Raises:
        FileNotFoundError: no ground truth, or a sequence without its ``PRED_DIR/SEQ.txt``.
    """
    pred_dir = Path(pred_dir)
    sequences = sequence_dirs(gt_dir)
    gt_root = next(iter(sequences.values())).parent
    missing = [name for name in sequences if not (pred_dir / f"{name}.txt").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{pred_dir}: no tracker result for sequence(s) {', '.join(missing)} (SEQ.txt)"
        )
    lengths = {name: int(read_seqinfo(folder)["seqlength"]) for name, folder in sequences.items()}
    dataset_config = {
        "GT_FOLDER": str(gt_root),
        "TRACKERS_FOLDER": str(pred_dir.parent),
        "TRACKERS_TO_EVAL": [pred_dir.name],
        "TRACKER_SUB_FOLDER": "",
        "OUTPUT_FOLDER": None,
        "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": lengths,
        "PRINT_CONFIG": False,
    }
    eval_config = {
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "TIME_PROGRESS": False,
        "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False,
        "LOG_ON_ERROR": None,
    }
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):  # TrackEval prints its progress; keep it for --verbose
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
        evaluator = trackeval.Evaluator(eval_config)
        dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
        results, _ = evaluator.evaluate([dataset], metrics)
    logger.debug(chatter.getvalue())
    per_sequence = results["MotChallenge2DBox"][pred_dir.name]
    return {name: _scores(per_sequence[name]["pedestrian"]) for name in [*sequences, COMBINED]}


def _scores(metrics: dict) -> TrackingScores:
    hota, clear, identity, count = metrics["HOTA"], metrics["CLEAR"], metrics["Identity"], metrics["Count"]
    return TrackingScores(
        hota=float(np.mean(hota["HOTA"])),  # HOTA is averaged over the localisation thresholds 0.05..0.95
        deta=float(np.mean(hota["DetA"])),
        assa=float(np.mean(hota["AssA"])),
        mota=float(clear["MOTA"]),
        idf1=float(identity["IDF1"]),
        id_switches=int(clear["IDSW"]),
        num_gt_ids=int(count["GT_IDs"]),
        num_pred_ids=int(count["IDs"]),
    )
