"""SimOTA assignment time per batch: our batched ``assign("simota")`` vs the peer's per-image
``get_assignments`` (pixeltable-yolox 0.4.3, official HEAD numerics), measured in the same run on the same
random batch.

Setting: batch 8, YOLOX-S at 640x640 (8400 anchor points), 80 classes, 10 and 50 ground truths per image
(random boxes 2-250 px, random logits). The peer side runs exactly what official ``get_losses`` runs per image
(decoded boxes computed once, outside the timing, for both). The script also checks that both sides make the
same assignment.

Writes the ``assign`` section of docs/benchmarks.md. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_assign.py [--repeats 5] [--gts 10 50] [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _problems import random_assignment_problem
from _report import write_section

from yoloxdet.assign import assign
from yoloxdet.ops.decode import anchor_points, decode_boxes
from yoloxdet.structures import HeadOutputs, Targets

BATCH, SIZE, CLASSES, STRIDES = 8, 640, 80, (8, 16, 32)
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_assign.py"


def random_batch(num_gt: int, seed: int = 0) -> tuple[HeadOutputs, Targets]:
    return random_assignment_problem(BATCH, SIZE, num_gt, CLASSES, seed)


def peer_runner(outputs: HeadOutputs, targets: Targets) -> Callable[[], list]:
    """The peer's per-image loop, as official get_losses runs it (images with GT only)."""
    from yolox.config import YoloxConfig

    cfg = YoloxConfig.get_named_config("yolox_s")
    head = cfg.get_model().head
    grid_xy, stride = anchor_points(outputs.feature_sizes, outputs.strides)
    x_shifts, y_shifts, strides = grid_xy[None, :, 0], grid_xy[None, :, 1], stride[None]
    pred = decode_boxes(outputs)
    obj = outputs.obj_logits[..., None]

    def run() -> list:
        results = []
        for b in range(BATCH):
            n = int(targets.mask[b].sum())
            boxes, classes = targets.boxes_cxcywh[b, :n], targets.labels[b, :n].float()
            results.append(
                head.get_assignments(
                    b, n, boxes, classes, pred[b], strides, x_shifts, y_shifts, outputs.cls_logits, obj
                )
            )  # fmt: skip
        return results

    return run


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def same_assignment(ours, peer_results: list) -> bool:
    return all(
        torch.equal(ours.fg_mask[b], fg) and torch.equal(ours.matched_gt[b][fg], matched)
        for b, (_, fg, _, matched, _) in enumerate(peer_results)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gts", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # the peer's torch.cuda.amp.autocast

    rows = []
    for num_gt in args.gts:
        outputs, targets = random_batch(num_gt)
        peer = peer_runner(outputs, targets)
        ours_s = median_seconds(lambda o=outputs, t=targets: assign("simota", o, t), args.repeats)
        peer_s = median_seconds(peer, args.repeats)
        identical = same_assignment(assign("simota", outputs, targets), peer())
        rows.append((num_gt, ours_s, peer_s, identical))
        print(
            f"G={num_gt}: ours {ours_s * 1e3:.1f} ms, peer {peer_s * 1e3:.1f} ms, "
            f"x{peer_s / ours_s:.1f}, same={identical}"
        )

    lines = [
        "## SimOTA assignment (batched vs official per-image)",
        "",
        f"Batch {BATCH}, YOLOX-S {SIZE}x{SIZE} (8400 anchor points), {CLASSES} classes, "
        "random logits and boxes; "
        f"median of {args.repeats} after a warm-up; CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {platform.machine()}.",
        "",
        "| GT per image | ours (ms/batch) | peer get_assignments (ms/batch) | speed-up | same assignment |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {g} | {o * 1e3:.1f} | {p * 1e3:.1f} | {p / o:.1f}x | {'yes' if same else 'NO'} |"
        for g, o, p, same in rows
    ]
    lines += ["", f"Command: `{COMMAND}`"]
    if not args.no_write:
        print("wrote", write_section("assign", "\n".join(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
