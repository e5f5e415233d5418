"""``yoloxdet track WEIGHTS SOURCE``: detect and track objects in a video, image sequence, camera or stream.

Writes into ``--output``: ``NAME.mp4`` (boxes with track ids and trails), ``NAME.txt`` (MOTChallenge rows, for
``yoloxdet track-eval``) and ``NAME.json`` (per frame, the tracks with boxes, scores and classes). A live
source runs until it ends or Ctrl-C, and the outputs are still written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .predict import add_detector_arguments, detector_from_args

HELP = "track objects (ByteTrack) in a video, image folder/glob, camera index or stream URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # the official ByteTrack detector settings: every box above 0.001 (BYTE uses those above 0.1), NMS 0.7
    add_detector_arguments(parser, conf=0.1, nms=0.7)
    parser.add_argument(
        "source", help="video file, image folder or glob (quoted), camera index (0) or stream URL"
    )
    parser.add_argument("-o", "--output", default="runs/track", help="output folder (default runs/track)")
    parser.add_argument(
        "--classes", nargs="+", metavar="CLASS", help="track only these classes (names or ids)"
    )
    parser.add_argument(
        "--track-thresh",
        type=float,
        default=0.5,
        help="high-score threshold; new tracks need it + 0.1 (default 0.5)",
    )
    parser.add_argument(
        "--match-thresh",
        type=float,
        default=0.8,
        help="cost limit 1 - IoU*score of the first association (default 0.8)",
    )
    parser.add_argument(
        "--track-buffer", type=int, default=30, help="frames a lost track is kept, at 30 fps (default 30)"
    )
    parser.add_argument(
        "--fps", type=float, help="frame rate of the source (default: from the video, else 30)"
    )
    parser.add_argument(
        "--min-box-area",
        type=float,
        default=10,
        help="leave tracks with smaller boxes out of the outputs (default 10 px², as official)",
    )
    parser.add_argument(
        "--mot20",
        action="store_true",
        help="plain IoU association, without the detection score (ByteTrack's MOT20 setting)",
    )
    parser.add_argument("--no-save", action="store_true", help="no annotated video, only the txt and JSON")


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    from tqdm import tqdm

    from ..io import write_json_atomic
    from ..track.mot import MotRows, write_mot
    from ..track.video import TrackDrawer, Tracker, open_source

    source = open_source(args.source)  # before loading the model: a bad camera fails at once
    detector = detector_from_args(args)
    frame_rate = args.fps or source.frame_rate
    tracker = Tracker(
        detector,
        classes=_class_ids(args.classes, detector.names),
        frame_rate=frame_rate,
        track_thresh=args.track_thresh,
        match_thresh=args.match_thresh,
        track_buffer=args.track_buffer,
        fuse_score=not args.mot20,
    )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    video_path, temporary = output / f"{source.name}.mp4", output / f".{source.name}.tmp.mp4"
    drawer = TrackDrawer(detector.names)
    writer = None
    rows: list[tuple[float, ...]] = []
    frames: list[dict[str, Any]] = []
    try:
        progress = tqdm(
            tracker.track(source.frames, live=source.live),
            total=source.total,
            unit="frame",
            desc=source.name,
            disable=args.no_progress,
        )
        try:
            for result in progress:
                tracks = result.tracks
                areas = np.prod(tracks.xyxy[:, 2:] - tracks.xyxy[:, :2], axis=1)  # [N]
                shown = tracks.select(areas > args.min_box_area)
                frames.append(shown.to_dict())
                for track_id, (x1, y1, x2, y2), score in zip(shown.track_ids, shown.xyxy, shown.scores):
                    rows.append((shown.frame_index + 1, track_id, x1, y1, x2 - x1, y2 - y1, score, -1, -1))
                if args.no_save:
                    continue
                if writer is None:
                    height, width = result.image.shape[:2]
                    writer = cv2.VideoWriter(
                        str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), frame_rate, (width, height)
                    )
                writer.write(drawer.draw(result.image, shown))
        except KeyboardInterrupt:
            if not source.live:
                raise
        if writer is not None:
            writer.release()
            temporary.replace(video_path)  # atomic: a half-written video never takes the final name
    finally:
        if writer is not None:
            writer.release()
        temporary.unlink(missing_ok=True)
    if not frames:
        raise ValueError(f"{args.source}: no frames could be read")
    write_mot(output / f"{source.name}.txt", MotRows.from_rows(rows))
    write_json_atomic(
        output / f"{source.name}.json",
        {
            "model": detector.info.model_name,
            "source": str(args.source),
            "fps": frame_rate,
            "class_names": list(detector.names),
            "frames": frames,
        },
    )
    print(f"{len({r[1] for r in rows})} tracks in {len(frames)} frames -> {output}")
    return 0


def _class_ids(classes: list[str] | None, names: tuple[str, ...]) -> list[int] | None:
    if not classes:
        return None
    ids = []
    for item in classes:
        if item.isdigit() and int(item) < len(names):
            ids.append(int(item))
        elif item in names:
            ids.append(names.index(item))
        else:
            raise ValueError(
                f"--classes: unknown class {item!r} (the model has {len(names)}: {', '.join(names[:5])}, ...)"
            )
    return ids
