"""BYTE association (Zhang et al., ByteTrack, ECCV 2022) over per-frame detections, as the official tracker
does it.

One :meth:`ByteTracker.update` per frame:

1. Split detections: high ``score > track_thresh``, low ``0.1 < score < track_thresh`` (both strict, as the
   official code; a score equal to ``track_thresh`` is dropped).
2. Predict every confirmed and lost track with the Kalman filter (lost tracks with zero height velocity).
3. First association: confirmed + lost tracks vs high detections, cost ``1 - IoU * score``, limit
   ``match_thresh``. Matched lost tracks are re-found with their old id.
4. Second association (the BYTE step): still-unmatched *tracked* tracks vs low detections, cost ``1 - IoU``,
   limit 0.5. Tracks left over become lost.
5. Unconfirmed tracks (started last frame) vs the high detections left, fused cost, limit 0.7; unmatched ones
   are removed.
6. High detections still left with ``score >= track_thresh + 0.1`` start new (unconfirmed) tracks; on the very
   first frame they are confirmed at once.
7. Lost tracks older than ``int(frame_rate / 30 * track_buffer)`` frames are removed; a tracked and a lost
   track that overlap (IoU > 0.85) are duplicates, the younger one goes.

The list bookkeeping follows the official code to the letter, quirks included (a track timed out in this frame
is dropped from the lost list only in the next, so it can still be re-found there), so ids equal the official
ones. Unlike the official code, ids count per tracker (the official counter is global to the process), and
each track carries the class of its latest detection (association itself ignores classes, as the official
tracker does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

import numpy as np

from . import kalman
from .matching import fuse_score, iou_cost, linear_assignment

LOW_SCORE_FLOOR = 0.1  # detections at or below this never take part (official constant)
SECOND_MATCH_THRESH = 0.5  # cost limit 1 - IoU of the second (low-score) association
UNCONFIRMED_MATCH_THRESH = 0.7
DUPLICATE_IOU_COST = 0.15  # tracked/lost pairs with 1 - IoU below this are one object


class TrackState(IntEnum):
    NEW = 0
    TRACKED = 1
    LOST = 2
    REMOVED = 3


class DetectionsLike(Protocol):
    """What :meth:`ByteTracker.update` reads from a detection result (e.g. :class:`yoloxdet.Detections`)."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@dataclass(eq=False, slots=True)
class _Track:
    """One track: its Kalman state and the bookkeeping the association reads and writes."""

    mean: np.ndarray  # [8]
    covariance: np.ndarray  # [8, 8]
    score: float
    class_id: int
    track_id: int
    frame_id: int  # last frame it was matched in (the official ``end_frame``)
    start_frame: int
    state: TrackState = TrackState.TRACKED
    is_activated: bool = False
    tracklet_len: int = 0


@dataclass(frozen=True)
class _Detections:
    """Detections of one frame as arrays, with the boxes in both forms the official code derives."""

    tlwh: np.ndarray  # [N, 4]
    tlbr: (
        np.ndarray
    )  # [N, 4] computed back from tlwh, as official (x1 + (x2 - x1) may differ from x2 in the last bit)
    scores: np.ndarray  # [N]
    class_ids: np.ndarray  # [N]

    @classmethod
    def from_xyxy(cls, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> _Detections:
        tlwh = boxes.copy()
        tlwh[:, 2:] -= tlwh[:, :2]
        tlbr = tlwh.copy()
        tlbr[:, 2:] += tlbr[:, :2]
        return cls(tlwh, tlbr, scores, class_ids)

    def take(self, index: np.ndarray) -> _Detections:
        return _Detections(self.tlwh[index], self.tlbr[index], self.scores[index], self.class_ids[index])

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True, eq=False)
class Tracks:
    """The confirmed tracks of one frame.

    Attributes:
        track_ids: [N] int64, 1-based, unique over the tracker's life.
        xyxy: [N, 4] float64 boxes (Kalman-corrected) in the detections' pixels.
        scores: [N] float64, score of the detection each track was last matched with.
        class_ids: [N] int64, class of that detection.
        frame_index: 0-based index of the frame (the tracker's update count - 1).
    """

    track_ids: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    frame_index: int = 0
    names: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.track_ids)

    def select(self, keep: np.ndarray) -> Tracks:
        """The tracks where the boolean mask or index array ``keep`` selects them."""
        return Tracks(
            self.track_ids[keep],
            self.xyxy[keep],
            self.scores[keep],
            self.class_ids[keep],
            self.frame_index,
            self.names,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the frame and a list of {track_id, box_xyxy, score, class_id[, class_name]}."""
        tracks = []
        for track_id, box, score, class_id in zip(self.track_ids, self.xyxy, self.scores, self.class_ids):
            entry = {
                "track_id": int(track_id),
                "box_xyxy": [round(float(v), 2) for v in box],
                "score": round(float(score), 5),
                "class_id": int(class_id),
            }
            if 0 <= class_id < len(self.names):
                entry["class_name"] = self.names[int(class_id)]
            tracks.append(entry)
        return {"frame": self.frame_index, "tracks": tracks}


class ByteTracker:
    """Multi-object tracking by BYTE association of per-frame detections; usable on any detector's output.

    Example:
        >>> tracker = ByteTracker(frame_rate=30)
        >>> tracks = tracker.update(np.array([[10, 10, 50, 90, 0.9]]))  # x1, y1, x2, y2, score
        >>> tracks.track_ids.tolist(), tracks.xyxy.round(1).tolist()
        ([1], [[10.0, 10.0, 50.0, 90.0]])
    """

    def __init__(
        self,
        *,
        track_thresh: float = 0.5,
        match_thresh: float = 0.8,
        track_buffer: int = 30,
        frame_rate: float = 30.0,
        fuse_score: bool = True,
        second_association: bool = True,
    ) -> None:
        """
        Args:
            track_thresh: detections above it are "high"; new tracks need ``track_thresh + 0.1``.
            match_thresh: cost limit of the first association (``1 - IoU * score``).
            track_buffer: frames a lost track is kept at 30 fps; scaled by ``frame_rate / 30``.
            frame_rate: of the video, to scale ``track_buffer``.
            fuse_score: multiply IoU by the detection score in the first and unconfirmed associations (the
                official default; its MOT20 setting turns it off).
            second_association: the BYTE step; False gives the high-score-only baseline of the paper's
                ablation.
        """
        self.track_thresh = track_thresh
        self.det_thresh = track_thresh + 0.1
        self.match_thresh = match_thresh
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        self.fuse_score = fuse_score
        self.second_association = second_association
        self.frame_id = 0
        self._last_id = 0
        self._tracked: list[_Track] = []
        self._lost: list[_Track] = []
        self._removed_ids: set[int] = set()

    def update(self, detections: np.ndarray | DetectionsLike, names: tuple[str, ...] = ()) -> Tracks:
        """Advance one frame.

        Args:
            detections: ``[N, 5]`` (x1, y1, x2, y2, score) or ``[N, 6]`` (+ class id) array, or an object with
                ``xyxy``, ``scores`` and ``class_ids`` (such as :class:`yoloxdet.Detections`).
            names: class names to put in :meth:`Tracks.to_dict`.
        Returns:
            The confirmed tracks in this frame.
        """
        boxes, scores, class_ids = _split_detections(detections)
        self.frame_id += 1
        high = scores > self.track_thresh
        low = (scores > LOW_SCORE_FLOOR) & (scores < self.track_thresh)
        dets_high = _Detections.from_xyxy(boxes[high], scores[high], class_ids[high])
        dets_low = _Detections.from_xyxy(boxes[low], scores[low], class_ids[low])

        unconfirmed = [t for t in self._tracked if not t.is_activated]
        confirmed = [t for t in self._tracked if t.is_activated]
        activated: list[_Track] = []
        refound: list[_Track] = []
        newly_lost: list[_Track] = []
        newly_removed: list[_Track] = []

        # first association: confirmed + lost tracks vs high-score detections
        pool = _join(confirmed, self._lost)
        self._predict(pool)
        pool_boxes = _tlbrs(pool)
        cost = iou_cost(pool_boxes, dets_high.tlbr)
        if self.fuse_score:
            cost = fuse_score(cost, dets_high.scores)
        matches, unmatched_tracks, unmatched_dets = linear_assignment(cost, self.match_thresh)
        self._apply_matches(pool, dets_high, matches, activated, refound)

        # second association (BYTE): tracks still unmatched vs low-score detections, plain IoU
        unmatched_tracks = [i for i in unmatched_tracks if pool[i].state == TrackState.TRACKED]
        remaining = [pool[i] for i in unmatched_tracks]
        if self.second_association:
            cost = iou_cost(pool_boxes[unmatched_tracks], dets_low.tlbr)  # boxes not moved since
            matches, still_unmatched, _ = linear_assignment(cost, SECOND_MATCH_THRESH)
            self._apply_matches(remaining, dets_low, matches, activated, refound)
        else:
            still_unmatched = np.arange(len(remaining))
        for i in still_unmatched:
            remaining[i].state = TrackState.LOST
            newly_lost.append(remaining[i])

        # unconfirmed tracks (one frame old) vs the high detections left; unmatched ones are dropped
        dets_left = dets_high.take(unmatched_dets)
        cost = iou_cost(_tlbrs(unconfirmed), dets_left.tlbr)
        if self.fuse_score:
            cost = fuse_score(cost, dets_left.scores)
        matches, unmatched_unconfirmed, unmatched_dets = linear_assignment(cost, UNCONFIRMED_MATCH_THRESH)
        self._apply_matches(unconfirmed, dets_left, matches, activated, refound)
        for i in unmatched_unconfirmed:
            unconfirmed[i].state = TrackState.REMOVED
            newly_removed.append(unconfirmed[i])

        # new tracks from confident detections nobody claimed
        starting = unmatched_dets[dets_left.scores[unmatched_dets] >= self.det_thresh]
        activated.extend(self._start_tracks(dets_left.take(starting)))

        for track in self._lost:
            if self.frame_id - track.frame_id > self.max_time_lost:
                track.state = TrackState.REMOVED
                newly_removed.append(track)

        tracked_boxes = self._update_lists(activated, refound, newly_lost, newly_removed)
        return self._output(tracked_boxes, names)

    def _update_lists(
        self, activated: list[_Track], refound: list[_Track], lost: list[_Track], removed: list[_Track]
    ) -> np.ndarray:
        """The official list updates, in their order (the removed ids are subtracted before this frame's);
        returns the boxes of the tracked list."""
        tracked = [t for t in self._tracked if t.state == TrackState.TRACKED]
        tracked = _join(_join(tracked, activated), refound)
        tracked_ids = {t.track_id for t in tracked}
        kept_lost = [t for t in _unique(self._lost) if t.track_id not in tracked_ids]
        kept_lost = [t for t in _unique(kept_lost + lost) if t.track_id not in self._removed_ids]
        self._removed_ids.update(t.track_id for t in removed)
        tracked_boxes = _tlbrs(tracked)
        keep_tracked, keep_lost = _remove_duplicates(tracked, kept_lost, tracked_boxes)
        self._tracked = [tracked[i] for i in keep_tracked]
        self._lost = [kept_lost[i] for i in keep_lost]
        return tracked_boxes[keep_tracked]

    def _output(self, tracked_boxes: np.ndarray, names: tuple[str, ...]) -> Tracks:
        shown_index = [i for i, t in enumerate(self._tracked) if t.is_activated]
        shown = [self._tracked[i] for i in shown_index]
        return Tracks(
            track_ids=np.array([t.track_id for t in shown], dtype=np.int64),
            xyxy=tracked_boxes[shown_index],
            scores=np.array([t.score for t in shown], dtype=np.float64),
            class_ids=np.array([t.class_id for t in shown], dtype=np.int64),
            frame_index=self.frame_id - 1,
            names=tuple(names),
        )

    def _predict(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        means = np.array([t.mean for t in tracks])
        not_tracked = np.array([t.state != TrackState.TRACKED for t in tracks])
        means[not_tracked, 7] = 0.0  # a lost track keeps its position velocity but stops growing
        means, covariances = kalman.predict(means, np.array([t.covariance for t in tracks]))
        for track, mean, covariance in zip(tracks, means, covariances):
            track.mean, track.covariance = mean, covariance

    def _apply_matches(
        self,
        tracks: list[_Track],
        detections: _Detections,
        matches: np.ndarray,
        activated: list[_Track],
        refound: list[_Track],
    ) -> None:
        """Kalman-correct matched tracks with their detections; a lost track is re-found with its old id."""
        if len(matches) == 0:
            return
        matched = [tracks[i] for i in matches[:, 0]]
        dets = detections.take(matches[:, 1])
        means, covariances = kalman.update(
            np.array([t.mean for t in matched]),
            np.array([t.covariance for t in matched]),
            kalman.tlwh_to_xyah(dets.tlwh),
        )
        for track, score, class_id, mean, covariance in zip(
            matched, dets.scores.tolist(), dets.class_ids.tolist(), means, covariances
        ):
            was_tracked = track.state == TrackState.TRACKED
            track.mean, track.covariance = mean, covariance
            track.tracklet_len = track.tracklet_len + 1 if was_tracked else 0
            track.state = TrackState.TRACKED
            track.is_activated = True
            track.frame_id = self.frame_id
            track.score, track.class_id = score, class_id
            (activated if was_tracked else refound).append(track)

    def _start_tracks(self, detections: _Detections) -> list[_Track]:
        if len(detections) == 0:
            return []
        means, covariances = kalman.initiate(kalman.tlwh_to_xyah(detections.tlwh))
        tracks = []
        for score, class_id, mean, covariance in zip(
            detections.scores.tolist(), detections.class_ids.tolist(), means, covariances
        ):
            self._last_id += 1
            tracks.append(
                _Track(
                    mean,
                    covariance,
                    score,
                    class_id,
                    self._last_id,
                    self.frame_id,
                    self.frame_id,
                    is_activated=self.frame_id == 1,
                )
            )  # elsewhere confirmed by a match next frame
        return tracks


def _split_detections(detections: np.ndarray | DetectionsLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if hasattr(detections, "xyxy"):
        boxes = np.asarray(detections.xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
        class_ids = np.asarray(detections.class_ids, dtype=np.int64).reshape(-1)
        return boxes, scores, class_ids
    array = np.asarray(detections, dtype=np.float64)
    if array.size == 0:
        array = array.reshape(0, 5)
    if array.ndim != 2 or array.shape[1] not in (5, 6):
        raise ValueError(
            f"detections: expected [N, 5] (x1, y1, x2, y2, score) or [N, 6] (+ class), got {array.shape}"
        )
    class_ids = array[:, 5].astype(np.int64) if array.shape[1] == 6 else np.zeros(len(array), np.int64)
    return array[:, :4], array[:, 4], class_ids


def _tlbrs(tracks: list[_Track]) -> np.ndarray:
    """The Kalman boxes ``[N, 4]`` (x1, y1, x2, y2) of tracks."""
    if not tracks:
        return np.zeros((0, 4))
    boxes = kalman.xyah_to_tlwh(np.array([t.mean[:4] for t in tracks]))
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _join(first: list[_Track], second: list[_Track]) -> list[_Track]:
    """``first`` then the tracks of ``second`` whose id is not in it yet."""
    seen = {t.track_id for t in first}
    joined = list(first)
    for track in second:
        if track.track_id not in seen:
            seen.add(track.track_id)
            joined.append(track)
    return joined


def _unique(tracks: list[_Track]) -> list[_Track]:
    """One track per id, the last one listed, in first-seen order (a dict keyed by id, as official)."""
    by_id: dict[int, _Track] = {}
    for track in tracks:
        by_id[track.track_id] = track
    return list(by_id.values())


def _remove_duplicates(
    tracked: list[_Track], lost: list[_Track], tracked_boxes: np.ndarray
) -> tuple[list[int], list[int]]:
    """Of a tracked and a lost track on the same object, keep the one tracked for longer; returns the indices
    kept in each list."""
    cost = iou_cost(tracked_boxes, _tlbrs(lost))
    drop_tracked, drop_lost = set(), set()
    for p, q in zip(*np.nonzero(cost < DUPLICATE_IOU_COST)):
        age_p = tracked[p].frame_id - tracked[p].start_frame
        age_q = lost[q].frame_id - lost[q].start_frame
        if age_p > age_q:
            drop_lost.add(q)
        else:
            drop_tracked.add(p)
    return (
        [i for i in range(len(tracked)) if i not in drop_tracked],
        [i for i in range(len(lost)) if i not in drop_lost],
    )
