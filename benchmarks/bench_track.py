"""Tracking speed: ByteTracker's cost per frame at 100 objects vs the packaged official tracker, and
end-to-end frames/s of the official YOLOX-Nano ONNX (onnxruntime) + tracking on a 640x480 video.

Writes the ``track`` section of docs/benchmarks.md.

    python benchmarks/bench_track.py                 # needs ../shared (coco128, yolox_nano.onnx)
    python benchmarks/bench_track.py --turns 3 --no-write
    python benchmarks/bench_track.py --baseline-rev ac86c12     # + the tracker as of that commit, interleaved
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from yoloxdet.bench.perf import median, time_interleaved
from yoloxdet.export import ExportMetadata
from yoloxdet.inference.api import Detector
from yoloxdet.inference.backends import OnnxBackend
from yoloxdet.track import ByteTracker
from yoloxdet.track.synthetic import load_sprites, make_sequence
from yoloxdet.track.video import Tracker, open_source
from yoloxdet.weights import CheckpointInfo
from yoloxdet.weights.coco_classes import COCO_CLASSES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GOAL_MS = 1.0  # tracker overhead per frame at 100 objects


def crowd_stream(num_objects: int, num_frames: int, seed: int = 0) -> list[np.ndarray]:
    """``num_objects`` objects on a 1920x1080 canvas, all detected every frame (80 % high, 20 % low score),
    moving at constant velocity with jitter: the tracker's steady state with that many tracks."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([0, 0], [1920, 1080], (num_objects, 2))
    velocities = rng.normal(0, 3, (num_objects, 2))
    sizes = rng.uniform(20, 80, (num_objects, 2))
    stream = []
    for _ in range(num_frames):
        centres += velocities + rng.normal(0, 0.5, (num_objects, 2))
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        scores = np.where(
            rng.random(num_objects) < 0.8,
            rng.uniform(0.6, 1, num_objects),
            rng.uniform(0.15, 0.45, num_objects),
        )
        stream.append(np.concatenate([boxes, scores[:, None]], axis=1)[rng.permutation(num_objects)])
    return stream


def baseline_tracker(rev: str) -> type:
    """``ByteTracker`` of the ``track`` package as it was at git revision ``rev``, imported from a temporary
    copy under its own package name (before/after comparisons in one process)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src/yoloxdet/track"], check=True, capture_output=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench_track_baseline_"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / "src" / "yoloxdet" / "track"
    name = "baseline_track"
    spec = importlib.util.spec_from_file_location(
        name, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.ByteTracker


def bench_overhead(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Median ms per frame over whole-stream turns, ours and the packaged official tracker taking turns: wall
    time, and the process's CPU time (less sensitive to other jobs taking the cores)."""
    from bytetracker import BYTETracker  # the peer, test extra
    from bytetracker.basetrack import BaseTrack

    stream = crowd_stream(args.objects, args.frames)
    # bytetracker 0.3.2 reads (x1, y1, x2, y2) as a centre box: shift by half the size to track the same boxes
    peer_inputs = []
    for dets in stream:
        wh = dets[:, 2:4] - dets[:, 0:2]
        shifted = dets[:, :4] - np.concatenate([wh, wh], axis=1) / 2
        peer_inputs.append(
            torch.from_numpy(np.concatenate([shifted, dets[:, 4:], np.zeros((len(dets), 1))], 1))
        )

    def ours() -> None:
        tracker = ByteTracker()
        for dets in stream:
            tracker.update(dets)

    def official() -> None:
        BaseTrack._count = 0
        tracker = BYTETracker(track_thresh=0.5, track_buffer=30, match_thresh=0.8, frame_rate=30)
        for dets in peer_inputs:
            tracker.update(dets, None)

    runners = {"ours": ours, "official": official}
    if args.baseline_rev:
        baseline = baseline_tracker(args.baseline_rev)

        def ours_before() -> None:
            tracker = baseline()
            for dets in stream:
                tracker.update(dets)

        runners["before"] = ours_before
    wall = time_interleaved(runners, warmup=1, iters=args.turns)
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for turn in range(args.turns):
        for name in list(runners) if turn % 2 == 0 else list(runners)[::-1]:
            start = time.process_time()
            runners[name]()
            cpu[name].append(time.process_time() - start)
    return {
        kind: {name: 1000 * median(seconds) / len(stream) for name, seconds in times.items()}
        for kind, times in (("wall", wall), ("cpu", cpu))
    }


def bench_end_to_end(args: argparse.Namespace) -> dict[str, float]:
    """Frames/s over a generated 640x480 video: decoding + nano detection (+ tracking), turns interleaved."""
    sprites = load_sprites(SHARED / "data" / "coco128")
    background = cv2.imread(str(SHARED / "data" / "coco128" / "images" / "000000000009.jpg"))
    sequence = make_sequence(sprites, background, num_objects=12, num_frames=args.video_frames, seed=0)
    folder = Path(tempfile.mkdtemp(prefix="bench_track_"))
    video = folder / "generated.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for frame in sequence.frames:
        writer.write(frame)
    writer.release()
    metadata = ExportMetadata("yolox-nano", COCO_CLASSES, (416, 416), output_layout="raw")
    backend = OnnxBackend(SHARED / "weights" / "yolox_nano.onnx", metadata, threads=args.threads)
    info = CheckpointInfo("yolox-nano", 80, COCO_CLASSES, (416, 416))
    detector = Detector(backend, info, conf_threshold=0.1, nms_iou_threshold=0.7, batch_size=args.batch)

    def detect_only() -> None:
        for _ in detector.predict_stream((f, None, i) for i, f in enumerate(open_source(video).frames)):
            pass

    def detect_and_track() -> None:
        for _ in Tracker(detector).track(open_source(video).frames):
            pass

    times = time_interleaved(
        {"detect": detect_only, "detect+track": detect_and_track}, warmup=1, iters=args.turns
    )
    return {name: args.video_frames / median(seconds) for name, seconds in times.items()}


def markdown(overhead: dict[str, dict[str, float]], fps: dict[str, float], args: argparse.Namespace) -> str:
    wall, cpu = overhead["wall"], overhead["cpu"]
    mark = "✓" if cpu["ours"] <= GOAL_MS else "✗"
    return "\n".join(
        [
            "## Tracking (CPU)",
            "",
            f"Written by `benchmarks/bench_track.py --turns {args.turns}"
            + (f" --baseline-rev {args.baseline_rev}" if args.baseline_rev else "")
            + "` on "
            f"{platform.machine()}, "
            f"{time.strftime('%Y-%m-%d')}. The machine is shared with other jobs; the rows of each table "
            "take turns so "
            "the load falls on them alike; medians over turns.",
            "",
            f"Tracker overhead: {args.objects} objects detected in every frame (80 % high, 20 % low scores), "
            f"{args.frames} frames per turn from a fresh tracker; `official` = the `bytetracker` 0.3.2 "
            "package (the "
            "official code, but its IoU is a Python double loop where the official repository calls "
            "cython_bbox, so it is slower "
            f"than the official code itself), same detections. Goal: ≤ {GOAL_MS:g} ms per frame. CPU time "
            "is the process's own "
            "(`time.process_time`); wall time includes waiting for the cores other jobs hold (load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when this was written).",
            "",
            "| tracker | CPU ms/frame | wall ms/frame | x official (CPU) |",
            "|---|---|---|---|",
            f"| yoloxdet ByteTracker | {cpu['ours']:.3f} {mark} | {wall['ours']:.3f} | "
            f"{cpu['ours'] / cpu['official']:.3f} |",
            *(
                [
                    f"| yoloxdet ByteTracker at `{args.baseline_rev}` (before the structure of arrays) | "
                    f"{cpu['before']:.3f} | {wall['before']:.3f} | {cpu['before'] / cpu['official']:.3f} |"
                ]
                if args.baseline_rev
                else []
            ),
            f"| bytetracker 0.3.2 (official code) | {cpu['official']:.3f} | {wall['official']:.3f} | 1.00 |",
            "",
            f"End to end: a generated 640x480 mp4 ({args.video_frames} frames, 12 COCO objects), decoded "
            "with OpenCV, "
            f"official `yolox_nano.onnx` at 416 in onnxruntime ({args.threads} threads, batch "
            f"{args.batch}), score ≥ 0.1, "
            "NMS 0.7; no drawing or writing.",
            "",
            "| pipeline | frames/s | x detect only |",
            "|---|---|---|",
            f"| detect | {fps['detect']:.1f} | 1.00 |",
            f"| detect + track | {fps['detect+track']:.1f} | {fps['detect+track'] / fps['detect']:.2f} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--frames", type=int, default=100, help="frames per overhead turn")
    parser.add_argument("--video-frames", type=int, default=90)
    parser.add_argument("--turns", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--baseline-rev", help="also time the tracker as of this git revision (interleaved), e.g. ac86c12"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overhead = bench_overhead(args)
    print(overhead, flush=True)
    fps = bench_end_to_end(args)
    text = markdown(overhead, fps, args)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('track', text, REPO / 'docs' / 'benchmarks.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
