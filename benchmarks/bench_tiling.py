"""Tiled prediction on one very large image: tiles per second, the cost of tiling over plain batched inference on
the same tiles, and peak memory.

The image is a mosaic of real coco128 photos (so the detector finds real objects and NMS has real work),
``--side`` pixels square (default 10,000: 300 MB decoded). Rows, taking turns ``--repeats`` times (median
reported):

- *tiled*: ``Detector(tile=TileSpec(416, 0.25))`` on the whole image: tile views, batches of 8, cut-box
  filtering, cross-tile NMS and the full pass;
- *plain*: the same detector's ``predict_batch`` on the same tiles as separate images (no tiling logic): the
  floor.

Peak RSS is the process's high-water mark after the tiled runs, beside the size of the decoded image.

Writes the ``tiling`` section of docs/benchmarks.md. Usage::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_tiling.py [--side 10000] [--repeats 2]
"""  # noqa: E501 - the first line is the argparse description (__doc__.splitlines()[0]); kept whole

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from yoloxdet.inference.api import Detector
from yoloxdet.inference.tiling import TileSpec, tile_windows

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def mosaic(side: int, coco128: Path) -> np.ndarray:
    """Photos repeated row by row, written straight into the final array (no transient copy of the image,
    which would raise the memory high-water mark before tiling starts)."""
    photos = [
        cv2.resize(cv2.imread(str(p)), (640, 480)) for p in sorted((coco128 / "images").glob("*.jpg"))[:32]
    ]
    image = np.empty((side, side, 3), np.uint8)
    for i, y in enumerate(range(0, side, 480)):
        for j, x in enumerate(range(0, side, 640)):
            photo = photos[(i * 31 + j) % len(photos)]
            image[y : y + 480, x : x + 640] = photo[: side - y, : side - x]
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "yolox_nano.onnx")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    torch.set_num_threads(2)
    spec = TileSpec(416, 0.25)
    detector = Detector.from_checkpoint(args.weights, model_name="yolox-nano", tile=spec)
    image = mosaic(args.side, SHARED / "data" / "coco128")
    windows = tile_windows(*image.shape[:2], spec)
    detector.predict_batch([image[:416, :416]])  # warm-up
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def tiled() -> int:
        return len(detector.predict_arrays([image])[0])

    def plain() -> int:
        found = 0
        for start in range(0, len(windows), detector.batch_size):
            crops = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in windows[start : start + detector.batch_size]]
            found += sum(len(d) for d in detector.predict_batch(crops))
        return found

    times: dict[str, list[float]] = {"tiled": [], "plain": []}
    counts = {}
    for _ in range(args.repeats):
        for name, run in (("tiled", tiled), ("plain", plain)):
            start = time.perf_counter()
            counts[name] = run()
            times[name].append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiled_s, plain_s = statistics.median(times["tiled"]), statistics.median(times["plain"])
    tiles = len(windows)
    text = f"""## Tiled prediction on a large image (`benchmarks/bench_tiling.py`)

One {args.side:,} x {args.side:,} px image (a mosaic of coco128 photos, \
{image.nbytes / 2**20:.0f} MB decoded), official
YOLOX-Nano at 416 (BN folded, channels_last), tiles of 416 px with 0.25 overlap ({tiles} tiles), batches of
{detector.batch_size}, 2 threads, {platform.machine()}; \
median of {args.repeats} turns each.
*plain* runs the same tiles as separate images without the tiling logic (the floor). \
The rows take turns, so the
× plain ratio holds under load; the seconds depend on what else the machine runs (load average
{os.getloadavg()[0]:.1f} at the end of this run).

| row | s | tiles/s | × plain | detections |
|---|---|---|---|---|
| tiled (cut-box filter, cross-tile NMS, full pass) | {tiled_s:.1f} | {tiles / tiled_s:.1f} \
| {tiled_s / plain_s:.2f} | {counts["tiled"]} |
| plain (same tiles, no merging) | {plain_s:.1f} | {tiles / plain_s:.1f} | 1.00 | {counts["plain"]} |

Peak RSS {peak_mb:.0f} MB (after loading the model and the image: {baseline_mb:.0f} MB): \
tiles are views into the
image and only boxes are kept, so tiling adds {peak_mb - baseline_mb:.0f} MB.

Command: `OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_tiling.py \
--side {args.side} --repeats {args.repeats}`
"""
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('tiling', text, REPO / 'docs' / 'benchmarks.md')}")


if __name__ == "__main__":
    main()
