"""Training-sample throughput: our mosaic+mixup pipeline vs pixeltable-yolox's ``MosaicDetection`` (official
numerics), on the same coco128 images, one process, one thread, measured in the same run.

Both sides do the full official recipe per sample (mosaic of 4, random affine, mixup, HSV, flip, letterbox)
with mosaic_prob = mixup_prob = 1 at 640x640, decoding JPEGs each time (no cache). A second pair of rows uses
each side's RAM cache of decoded, resized images. The ratio is ours / peer in samples per second.

Writes the ``data`` section of docs/benchmarks.md. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_data.py \\
        [--samples 200] [--data ../shared/data/coco128]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import peer_mosaic
from _report import write_section

from yoloxdet.data.augment import ResolvedAugment
from yoloxdet.data.datasets import build_dataset
from yoloxdet.data.loader import _TrainView
from yoloxdet.data.spec import parse_dataset_spec

SIZE = (640, 640)
AUG = ResolvedAugment(mosaic_prob=1.0, mixup_prob=1.0, enable_mixup=True)


def ours(data: Path, cache: bool):
    spec = parse_dataset_spec(
        {"format": "coco", "train": {"images": "images", "annotations": "annotations/instances.json"}},
        base=data,
    )
    dataset = build_dataset(spec, "train")
    if cache:
        dataset.enable_cache("ram", SIZE, workers=1)
    view = _TrainView(dataset, SIZE, AUG, seed=0)
    return lambda i: view[(i % len(dataset), 0, True)]


def peer(data: Path, cache: bool):
    from yolox.data.datasets.coco import CocoDataset

    with contextlib.redirect_stdout(io.StringIO()):
        base = CocoDataset(
            data_dir=str(data),
            json_file="instances.json",
            name="images",
            img_size=SIZE,
            cache=cache,
            cache_type="ram",
        )
    md = peer_mosaic(base, SIZE, AUG)
    return lambda i: md[i % len(md)]


def rate(sample, n: int) -> float:
    for i in range(5):  # warm-up
        sample(i)
    start = time.perf_counter()
    for i in range(n):
        sample(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "coco128")
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    data = Path(args.data)
    rows = []
    for cache in (False, True):
        ours_rate = rate(ours(data, cache), args.samples)
        peer_rate = rate(peer(data, cache), args.samples)
        rows.append((cache, ours_rate, peer_rate))
        print(
            f"cache={cache}: ours {ours_rate:.1f}/s  peer {peer_rate:.1f}/s  "
            f"ratio {ours_rate / peer_rate:.2f}x"
        )
    table = "\n".join(
        f"| {'RAM cache' if c else 'decode each time'} | {o:.1f} | {p:.1f} | {o / p:.2f}x |"
        for c, o, p in rows
    )
    markdown = f"""## Data pipeline: mosaic + mixup samples/s (`benchmarks/bench_data.py`)

Full official training recipe per sample (mosaic of 4, random affine, mixup, HSV, flip) at 640x640 on coco128,
one process, `OMP_NUM_THREADS=1`, `cv2.setNumThreads(1)`, {args.samples} samples per row; peer is
pixeltable-yolox 0.4.3 `MosaicDetection` + `TrainTransform`. \
Machine: {platform.machine()},
Python {platform.python_version()}, OpenCV {cv2.__version__}.

| images | ours (samples/s) | peer (samples/s) | ours / peer |
|---|---|---|---|
{table}
"""
    if not args.no_write:
        print(f"wrote {write_section('data', markdown)}")


if __name__ == "__main__":
    main()
