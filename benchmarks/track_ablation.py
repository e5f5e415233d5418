"""BYTE vs the high-score-only baseline (the same tracker without the second association) on generated
sequences with occlusions, scored by TrackEval. Writes the ``track-ablation`` section of docs/tracking.md.

Two detection streams per sequence: detections derived from the ground truth (box noise, misses, low scores
when an object is less than 60 % visible: the situation BYTE is built for) and the official YOLOX-Nano ONNX
run on the rendered frames (score >= 0.1, NMS 0.7, as the official ByteTrack detector settings).

    python benchmarks/track_ablation.py             # 5 sequences, 16 objects, 150 frames; needs ../shared
    python benchmarks/track_ablation.py --seeds 2 --no-detector --no-write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from yoloxdet.export import ExportMetadata
from yoloxdet.inference.api import Detector
from yoloxdet.inference.backends import OnnxBackend
from yoloxdet.track import ByteTracker
from yoloxdet.track.evaluate import COMBINED, evaluate_mot
from yoloxdet.track.mot import MotRows, write_mot
from yoloxdet.track.synthetic import detections_from_gt, load_sprites, make_sequence, write_generated_sequence
from yoloxdet.weights import CheckpointInfo
from yoloxdet.weights.coco_classes import COCO_CLASSES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BACKGROUNDS = (
    "000000000009.jpg",
    "000000000025.jpg",
    "000000000030.jpg",
    "000000000034.jpg",
    "000000000036.jpg",
)


def track_stream(
    stream: list[np.ndarray], *, second_association: bool, frame_rate: int, track_thresh: float
) -> MotRows:
    tracker = ByteTracker(
        frame_rate=frame_rate, second_association=second_association, track_thresh=track_thresh
    )
    rows = []
    for frame, dets in enumerate(stream, start=1):
        tracks = tracker.update(dets)
        for track_id, (x1, y1, x2, y2), score in zip(tracks.track_ids, tracks.xyxy, tracks.scores):
            rows.append((frame, track_id, x1, y1, x2 - x1, y2 - y1, score, -1, -1))
    return MotRows.from_rows(rows)


def detector_stream(detector: Detector, frames: np.ndarray) -> list[np.ndarray]:
    stream = []
    for dets in detector.predict_stream((frame, None, i) for i, frame in enumerate(frames)):
        stream.append(np.concatenate([dets.xyxy, dets.scores[:, None]], axis=1).astype(np.float64))
    return stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of generated sequences")
    parser.add_argument("--objects", type=int, default=16)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--low-thresh", type=float, default=0.25, help="second track_thresh for the detector")
    parser.add_argument("--no-detector", action="store_true", help="only the ground-truth-derived detections")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/tracking.md alone")
    args = parser.parse_args(argv)

    sprites = load_sprites(SHARED / "data" / "coco128")
    work = Path(tempfile.mkdtemp(prefix="track_ablation_"))
    streams: dict[str, dict[str, list[np.ndarray]]] = {"ground truth + noise": {}}
    thresholds = {"ground truth + noise": [0.5]}
    detector = None
    if not args.no_detector:
        metadata = ExportMetadata("yolox-nano", COCO_CLASSES, (416, 416), output_layout="raw")
        backend = OnnxBackend(SHARED / "weights" / "yolox_nano.onnx", metadata, threads=2)
        info = CheckpointInfo("yolox-nano", 80, COCO_CLASSES, (416, 416))
        detector = Detector(backend, info, conf_threshold=0.1, nms_iou_threshold=0.7)
        streams["YOLOX-Nano (official ONNX)"] = {}
        # the nano scores these pasted objects low (mostly < 0.6): also with BYTE's thresholds scaled down
        thresholds["YOLOX-Nano (official ONNX)"] = [0.5, args.low_thresh]
    frame_rate = 30
    for seed in range(args.seeds):
        background = cv2.imread(
            str(SHARED / "data" / "coco128" / "images" / BACKGROUNDS[seed % len(BACKGROUNDS)])
        )
        sequence = make_sequence(
            sprites,
            background,
            num_objects=args.objects,
            num_frames=args.frames,
            frame_rate=frame_rate,
            seed=seed,
        )
        name = f"occlusion-{seed}"
        write_generated_sequence(sequence, work / "gt", name=name)
        streams["ground truth + noise"][name] = detections_from_gt(sequence.gt, seed=seed)
        if detector is not None:
            streams["YOLOX-Nano (official ONNX)"][name] = detector_stream(detector, sequence.frames)
        print(
            f"{name}: {len(sequence.gt)} ground-truth boxes, {(sequence.gt.visibility < 0.6).mean():.0%} "
            "under 60 % visible",
            flush=True,
        )

    lines = [
        "| detections | track_thresh | tracker | HOTA | MOTA | IDF1 | ID switches | IDs (truth: "
        f"{args.seeds * args.objects}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for source, per_sequence in streams.items():
        for thresh in thresholds[source]:
            for label, second in (("BYTE", True), ("high-score only", False)):
                pred_dir = work / f"{source.split()[0]}-{thresh}-{label.split()[0]}"
                for name, stream in per_sequence.items():
                    rows = track_stream(
                        stream, second_association=second, frame_rate=frame_rate, track_thresh=thresh
                    )
                    write_mot(pred_dir / f"{name}.txt", rows)
                scores = evaluate_mot(pred_dir, work / "gt")[COMBINED].as_percent()
                lines.append(
                    f"| {source} | {thresh:g} | {label} | {scores['HOTA']:.1f} | {scores['MOTA']:.1f} "
                    f"| {scores['IDF1']:.1f} | {scores['IDSW']} | {scores['IDs']} |"
                )
    command = "python benchmarks/track_ablation.py" + (" --no-detector" if args.no_detector else "")
    if (args.seeds, args.objects, args.frames) != (5, 16, 150):
        command += f" --seeds {args.seeds} --objects {args.objects} --frames {args.frames}"
    text = "\n".join(
        [
            f"Written by `{command}` ({args.seeds} sequences of {args.frames} frames, {args.objects} "
            "objects each, "
            "640x480 at 30 fps; TrackEval over all sequences combined).",
            "",
            *lines,
        ]
    )
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('track-ablation', text, REPO / 'docs' / 'tracking.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
