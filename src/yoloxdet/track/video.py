"""Tracking with a YOLOX :class:`~yoloxdet.inference.api.Detector`: frame sources, the detect-then-track loop,
drawing.

Sources are whatever OpenCV opens: a video file, a camera index (``"0"``), a stream URL (``rtsp://...``), or a
folder / glob of image files (sorted by name). Files are detected in batches (the detector's batch size); live
sources (cameras, streams) frame by frame, so a track never waits for frames that have not arrived.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..io import IMAGE_SUFFIXES, expand_sources, is_video, read_image
from ..viz import class_color
from .byte_tracker import ByteTracker, Tracks

if TYPE_CHECKING:
    from ..inference.api import Detector
    from ..inference.results import Detections

DEFAULT_FRAME_RATE = 30.0


@dataclass
class FrameSource:
    """Frames of one source: ``frames`` yields BGR images in order; ``total`` is None when unknown (live)."""

    name: str
    frames: Iterator[np.ndarray]
    frame_rate: float
    total: int | None
    live: bool


def open_source(source: str | int | Path) -> FrameSource:
    """Open a camera index, stream URL, video file, image folder or glob pattern.

    Raises:
        ValueError: a camera or stream that cannot be opened, or a video OpenCV cannot read (one line, named).
        FileNotFoundError: a path or pattern that matches nothing.
    """
    text = str(source)
    if text.isdigit() or "://" in text:
        # OpenCV and FFmpeg log their own reasons on stderr; our one-line error below replaces them
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            capture = cv2.VideoCapture(int(text) if text.isdigit() else text)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not capture.isOpened():
            kind = "camera" if text.isdigit() else "stream"
            raise ValueError(
                f"{kind} {text}: cannot be opened (is it connected and not used by another program?)"
            )
        name = f"camera{text}" if text.isdigit() else Path(text.split("?")[0].rstrip("/")).name or "stream"
        return FrameSource(name, _read_capture(capture), _capture_fps(capture), None, live=True)
    path = Path(text)
    if path.is_file() and is_video(path):
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(f"{path}: not a readable video")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        return FrameSource(path.stem, _read_capture(capture), _capture_fps(capture), total, live=False)
    images = [p for p in expand_sources(text) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise FileNotFoundError(f"{text}: no image files (and not a video, camera index or stream URL)")
    name = path.name if path.is_dir() else path.parent.name or "frames"
    return FrameSource(name, (read_image(p) for p in images), DEFAULT_FRAME_RATE, len(images), live=False)


def _capture_fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and 0 < fps < 1000 else DEFAULT_FRAME_RATE


def _read_capture(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's result: the image, the detector's detections and the confirmed tracks."""

    image: np.ndarray
    detections: Detections
    tracks: Tracks


class Tracker:
    """A :class:`~yoloxdet.inference.api.Detector` followed by a :class:`ByteTracker`.

    Example:
        >>> tracker = Tracker(Detector.from_checkpoint("yolox_s.pth", model_name="yolox-s",  # doctest: +SKIP
        ...                                           conf_threshold=0.1, nms_iou_threshold=0.7))
        >>> for frame in tracker.track(open_source("street.mp4").frames):  # doctest: +SKIP
        ...     print(frame.tracks.track_ids)
    """

    def __init__(
        self,
        detector: Detector,
        *,
        classes: Sequence[int] | None = None,
        frame_rate: float = DEFAULT_FRAME_RATE,
        **tracker_options: float | bool,
    ) -> None:
        """
        Args:
            detector: runs on every frame; its ``conf_threshold`` should be at most 0.1, the lowest score BYTE
                uses (the official ByteTrack detector keeps everything above 0.001).
            classes: track only these class ids (default: all).
            frame_rate: of the source, scales how long lost tracks are kept.
            tracker_options: :class:`ByteTracker` options (``track_thresh``, ``match_thresh``,
            ``track_buffer``...).
        """
        self.detector = detector
        self.classes = None if classes is None else np.asarray(sorted(set(classes)), dtype=np.int64)
        self.byte_tracker = ByteTracker(frame_rate=frame_rate, **tracker_options)

    def track(self, frames: Iterable[np.ndarray], *, live: bool = False) -> Iterator[TrackedFrame]:
        """Detect and track each BGR frame in order; ``live`` detects one frame at a time instead of
        batching."""
        for detections in self._detect(frames, live):
            rows = np.column_stack([detections.xyxy, detections.scores, detections.class_ids])  # [N, 6]
            if self.classes is not None:
                rows = rows[np.isin(detections.class_ids, self.classes)]
            tracks = self.byte_tracker.update(rows, names=self.detector.names)
            yield TrackedFrame(detections.image, detections, tracks)

    def _detect(self, frames: Iterable[np.ndarray], live: bool) -> Iterator[Detections]:
        if not live:
            yield from self.detector.predict_stream((frame, None, i) for i, frame in enumerate(frames))
            return
        for index, frame in enumerate(frames):
            yield from self.detector.predict_arrays([frame], frame_indices=[index], keep_images=True)


class TrackDrawer:
    """Draws tracks with their id, class and a trail of recent box centres; colours follow the track id."""

    def __init__(self, names: Sequence[str], trail_length: int = 30) -> None:
        self.names = tuple(names)
        self.trail_length = trail_length
        self._trails: dict[int, deque[tuple[int, int]]] = {}

    def draw(self, image: np.ndarray, tracks: Tracks) -> np.ndarray:
        canvas = image.copy()
        thickness = max(1, round(sum(canvas.shape[:2]) / 600))
        for track_id, box, class_id in zip(tracks.track_ids.tolist(), tracks.xyxy, tracks.class_ids.tolist()):
            x1, y1, x2, y2 = (int(v) for v in np.rint(box))
            trail = self._trails.setdefault(track_id, deque(maxlen=self.trail_length))
            trail.append(((x1 + x2) // 2, (y1 + y2) // 2))
            color = class_color(track_id)
            cv2.polylines(canvas, [np.array(trail, np.int32)], False, color, thickness, cv2.LINE_AA)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
            label = f"{track_id} {self.names[class_id]}" if 0 <= class_id < len(self.names) else str(track_id)
            cv2.putText(
                canvas,
                label,
                (x1, max(y1 - 4, 12)),
                cv2.FONT_HERSHEY_SIMPLEX,
                max(0.4, thickness / 3),
                color,
                max(1, thickness - 1),
                cv2.LINE_AA,
            )
        shown = set(tracks.track_ids.tolist())
        for track_id in [t for t in self._trails if t not in shown]:
            del self._trails[track_id]  # a trail restarts when its track comes back
        return canvas
