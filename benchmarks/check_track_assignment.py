"""Which linear assignment gives ByteTrack's matches: ``lap.lapjv`` with a cost limit (official), scipy's
``linear_sum_assignment`` on the same limited problem, or scipy on the plain matrix with pairs over the limit
dropped afterwards (what scipy-based ports do). Prints a table for docs/tracking.md.

Two sets of cost matrices: the tracker's own (every first association, ``1 - IoU * score``, limit 0.8, of
ByteTracker on random detection streams), and small random matrices with costs uniform in [0, 1.2] (no ties),
where the total cost of the limited problem (matched costs + limit / 2 per unmatched row or column) tells
which is optimal.

    python benchmarks/check_track_assignment.py
"""

from __future__ import annotations

import argparse
import sys

import lap
import numpy as np
from scipy.optimize import linear_sum_assignment

from yoloxdet.track import ByteTracker, matching
from yoloxdet.track.synthetic import random_detection_stream


def lap_limited(cost: np.ndarray, limit: float) -> set[tuple[int, int]]:
    _, rows, _ = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    return {(i, int(j)) for i, j in enumerate(rows) if j >= 0}


def scipy_limited(cost: np.ndarray, limit: float) -> set[tuple[int, int]]:
    """The problem lap solves: leaving a row or a column unmatched costs limit / 2 (an (n+m) square)."""
    n, m = cost.shape
    big = np.full((n + m, n + m), limit / 2)
    big[:n, :m] = np.where(cost <= limit, cost, np.inf)  # pairs over the limit are forbidden
    big[n:, m:] = 0.0
    big = np.where(np.isinf(big), 1e9, big)
    rows, cols = linear_sum_assignment(big)
    return {(int(i), int(j)) for i, j in zip(rows, cols) if i < n and j < m}


def scipy_then_filter(cost: np.ndarray, limit: float) -> set[tuple[int, int]]:
    rows, cols = linear_sum_assignment(cost)
    return {(int(i), int(j)) for i, j in zip(rows, cols) if cost[i, j] <= limit}


def limited_total(cost: np.ndarray, matches: set[tuple[int, int]], limit: float) -> float:
    unmatched = cost.shape[0] + cost.shape[1] - 2 * len(matches)
    return sum(cost[i, j] for i, j in matches) + limit / 2 * unmatched


def collect_costs(streams: int) -> list[np.ndarray]:
    """First-association cost matrices recorded from ByteTracker runs."""
    recorded: list[np.ndarray] = []
    original = matching.linear_assignment

    def recording(cost: np.ndarray, thresh: float):
        if thresh == 0.8 and cost.size:
            recorded.append(cost.copy())
        return original(cost, thresh)

    import yoloxdet.track.byte_tracker as byte_tracker

    byte_tracker.linear_assignment = recording  # record only: the results are the original's
    try:
        for seed in range(streams):
            tracker = ByteTracker()
            for dets in random_detection_stream(np.random.default_rng(seed), num_objects=40, num_frames=60):
                tracker.update(dets)
    finally:
        byte_tracker.linear_assignment = original
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--random", type=int, default=20000)
    args = parser.parse_args(argv)
    costs = collect_costs(args.streams)
    same_limited = same_filtered = fewer = 0
    for cost in costs:
        reference = lap_limited(cost, 0.8)
        same_limited += scipy_limited(cost, 0.8) == reference
        filtered = scipy_then_filter(cost, 0.8)
        same_filtered += filtered == reference
        fewer += len(filtered) < len(reference)
    n = len(costs)
    print(
        f"Written by `python benchmarks/check_track_assignment.py`: {n} first-association "
        "cost matrices of ByteTracker on random streams (40 objects, 60 frames each).\n"
    )
    print("| assignment | same matches as lap.lapjv(cost_limit=0.8) | fewer matches |")
    print("|---|---|---|")
    print(f"| scipy on the limited problem (lap's extension) | {same_limited}/{n} | 0 |")
    print(f"| scipy on the plain matrix, pairs > 0.8 dropped after | {same_filtered}/{n} | {fewer}/{n} |")

    rng = np.random.default_rng(0)
    worse = {"lap": 0, "limited": 0, "filtered": 0}
    for _ in range(args.random):
        cost = rng.uniform(0, 1.2, rng.integers(1, 6, 2))
        results = {
            "lap": lap_limited(cost, 0.8),
            "limited": scipy_limited(cost, 0.8),
            "filtered": scipy_then_filter(cost, 0.8),
        }
        best = min(limited_total(cost, m, 0.8) for m in results.values())
        for name, matches in results.items():
            worse[name] += limited_total(cost, matches, 0.8) > best + 1e-9
    print(
        f"\nOn {args.random} random matrices (1-5 rows and columns), not optimal for the limited problem: "
        f"lap.lapjv {worse['lap']}, scipy on the limited problem {worse['limited']}, "
        f"scipy then dropping pairs {worse['filtered']}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
