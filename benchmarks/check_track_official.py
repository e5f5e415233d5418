"""ByteTracker against the official ByteTrack code itself, run from a checkout of the official repository that
you provide (nothing of it is copied here): identical track ids and boxes on random streams and on generated
sequences, with the default and the MOT20 settings.

The official tracker imports ``cython_bbox`` (``pip install cython_bbox==0.1.5``), ``lap`` and ``torch``, and
uses ``np.float``, removed in numpy 1.24; the check restores that alias before importing it.

    # with a checkout of the ifzhang/ByteTrack repository in /tmp/ByteTrack:
    python benchmarks/check_track_official.py --official /tmp/ByteTrack
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from yoloxdet.track import ByteTracker
from yoloxdet.track.synthetic import detections_from_gt, load_sprites, make_sequence, random_detection_stream

SHARED = Path(__file__).resolve().parents[2] / "shared"


def official_tracker(repo: Path):
    """The official ``BYTETracker`` and ``BaseTrack`` classes, imported from ``repo/yolox/tracker``."""
    sys.path.insert(0, str(repo))
    for name in [m for m in sys.modules if m == "yolox" or m.startswith("yolox.")]:
        del sys.modules[name]  # another package named yolox (pixeltable-yolox) may be installed
    np.float = float  # the official code predates numpy 1.24
    module = importlib.import_module("yolox.tracker.byte_tracker")
    if not Path(module.__file__).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"imported {module.__file__}, not the checkout at {repo}")
    return module.BYTETracker, importlib.import_module("yolox.tracker.basetrack").BaseTrack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of ifzhang/ByteTrack")
    parser.add_argument("--streams", type=int, default=40)
    args = parser.parse_args(argv)
    official, base_track = official_tracker(args.official)

    streams = [
        random_detection_stream(np.random.default_rng(seed), num_objects=30, num_frames=100)
        for seed in range(args.streams)
    ]
    sprites = load_sprites(SHARED / "data" / "coco128")
    background = cv2.imread(str(SHARED / "data" / "coco128" / "images" / "000000000009.jpg"))
    for seed in range(3):
        sequence = make_sequence(sprites, background, num_objects=16, num_frames=150, seed=seed)
        streams.append(detections_from_gt(sequence.gt, seed=seed))

    frames = mismatches = 0
    for index, stream in enumerate(streams):
        for mot20, frame_rate in ((False, 30), (True, 10)):
            base_track._count = 0  # the official id counter is global to the process
            options = SimpleNamespace(track_thresh=0.5, track_buffer=30, match_thresh=0.8, mot20=mot20)
            reference, ours = (
                official(options, frame_rate=frame_rate),
                ByteTracker(fuse_score=not mot20, frame_rate=frame_rate),
            )
            for frame, dets in enumerate(stream):
                expected = reference.update(dets.copy(), (480, 640), (480, 640))  # scale 1: boxes as given
                tracks = ours.update(dets)
                frames += 1
                ids = [t.track_id for t in expected]
                boxes = np.array([t.tlbr for t in expected]).reshape(-1, 4)
                if tracks.track_ids.tolist() != ids or not np.allclose(tracks.xyxy, boxes, rtol=0, atol=1e-6):
                    print(
                        f"stream {index} (mot20={mot20}) differs at frame {frame}: {tracks.track_ids} vs "
                        f"{ids}"
                    )
                    mismatches += 1
                    break
    print(f"{len(streams)} streams x 2 settings, {frames} frames compared: {mismatches} streams differ")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
