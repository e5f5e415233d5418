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

Every track's state lives in a :class:`~.store.TrackStore` (contiguous arrays, one slot per track) and the
official lists are arrays of slots, so each step is a few numpy calls over all tracks (see docs/tracking.md).
The list bookkeeping follows the official code to the letter, quirks included (a track timed out in this frame
is dropped from the lost list only in the next, so it can still be re-found there), so ids equal the official
ones. Unlike the official code, ids count per tracker (the official counter is global to the process), and
each track carries the class of its latest detection (association itself ignores classes, as the official
tracker does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import kalman
from .matching import fuse_score, iou_cost, linear_assignment
from .store import TrackState, TrackStore

LOW_SCORE_FLOOR = 0.1  # detections at or below this never take part (official constant)
SECOND_MATCH_THRESH = 0.5  # cost limit 1 - IoU of the second (low-score) association
UNCONFIRMED_MATCH_THRESH = 0.7
DUPLICATE_IOU_COST = 0.15  # tracked/lost pairs with 1 - IoU below this are one object


class DetectionsLike(Protocol):
    """What :meth:`ByteTracker.update` reads from a detection result (e.g. :class:`yoloxdet.Detections`)."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@dataclass(frozen=True)
class _Detections:
    """Detections of one frame as arrays, with the boxes in the forms the official code derives; the
    associations address them by index."""

    tlbr: np.ndarray  # [N, 4] computed back from tlwh, as official (x1 + (x2 - x1) may differ from x2)
    xyah: np.ndarray  # [N, 4] the Kalman measurement, from tlwh
    scores: np.ndarray  # [N]
    class_ids: np.ndarray  # [N]

    @classmethod
    def from_xyxy(cls, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> _Detections:
        tlwh = boxes.copy()
        tlwh[:, 2:] -= tlwh[:, :2]
        tlbr = tlwh.copy()
        tlbr[:, 2:] += tlbr[:, :2]
        return cls(tlbr, kalman.tlwh_to_xyah(tlwh), scores, class_ids)


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
        self._store = TrackStore()
        # the official lists, as slot arrays into the store; no slot appears twice in one list or in both
        self._tracked = np.zeros(0, np.intp)
        self._lost = np.zeros(0, np.intp)

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
        store = self._store
        dets = _Detections.from_xyxy(boxes, scores, class_ids)
        high = np.flatnonzero(scores > self.track_thresh)
        low = np.flatnonzero((scores > LOW_SCORE_FLOOR) & (scores < self.track_thresh))

        confirmed_mask = store.is_activated[self._tracked]
        unconfirmed = self._tracked[~confirmed_mask]

        # first association: confirmed + lost tracks vs high-score detections
        pool = self._join(self._tracked[confirmed_mask], self._lost)
        pool_tracked = store.state[pool] == TrackState.TRACKED
        means = store.mean[pool]
        means[~pool_tracked, 7] = 0.0  # a lost track keeps its position velocity but stops growing
        means, store.covariance[pool] = kalman.predict(means, store.covariance[pool])
        store.mean[pool] = means
        pool_boxes = _tlbrs(means)
        cost = iou_cost(pool_boxes, dets.tlbr[high])
        if self.fuse_score:
            cost = fuse_score(cost, scores[high])
        matches, unmatched_rows, unmatched_high = linear_assignment(cost, self.match_thresh)
        first_slots, first_dets = pool[matches[:, 0]], high[matches[:, 1]]
        was_tracked = pool_tracked[matches[:, 0]]

        # second association (BYTE): tracks still unmatched vs low-score detections, plain IoU
        unmatched_rows = unmatched_rows[pool_tracked[unmatched_rows]]
        if self.second_association:
            cost = iou_cost(pool_boxes[unmatched_rows], dets.tlbr[low])  # boxes not moved since
            matches, still_unmatched, _ = linear_assignment(cost, SECOND_MATCH_THRESH)
            second_slots, second_dets = pool[unmatched_rows[matches[:, 0]]], low[matches[:, 1]]
            newly_lost = pool[unmatched_rows[still_unmatched]]
        else:
            second_slots = second_dets = np.zeros(0, np.intp)
            newly_lost = pool[unmatched_rows]

        # unconfirmed tracks (one frame old) vs the high detections left; unmatched ones are dropped
        high_left = high[unmatched_high]
        cost = iou_cost(_tlbrs(store.mean[unconfirmed]), dets.tlbr[high_left])
        if self.fuse_score:
            cost = fuse_score(cost, scores[high_left])
        matches, unmatched_unconfirmed, unmatched_left = linear_assignment(cost, UNCONFIRMED_MATCH_THRESH)
        third_slots, third_dets = unconfirmed[matches[:, 0]], high_left[matches[:, 1]]

        # every match is Kalman-corrected at once: no association reads a box that an earlier one corrected
        self._correct(
            np.concatenate([first_slots, second_slots, third_slots]),
            np.concatenate([first_dets, second_dets, third_dets]),
            dets,
        )
        store.state[newly_lost] = TrackState.LOST
        dropped_unconfirmed = unconfirmed[unmatched_unconfirmed]
        store.state[dropped_unconfirmed] = TrackState.REMOVED

        # new tracks from confident detections nobody claimed
        left = high_left[unmatched_left]
        started = self._start_tracks(left[scores[left] >= self.det_thresh], dets)

        timed_out = self._lost[self.frame_id - store.frame_id[self._lost] > self.max_time_lost]
        store.state[timed_out] = TrackState.REMOVED

        activated = np.concatenate([first_slots[was_tracked], second_slots, third_slots, started])
        tracked_boxes = self._update_lists(
            activated, first_slots[~was_tracked], newly_lost, np.concatenate([dropped_unconfirmed, timed_out])
        )
        return self._output(tracked_boxes, names)

    def _join(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """``first`` then the slots of ``second`` not in it yet (the official ``joint_stracks``)."""
        if len(second) == 0:
            return first
        return np.concatenate([first, second[~self._store.mask(first)[second]]])

    def _update_lists(
        self, activated: np.ndarray, refound: np.ndarray, lost: np.ndarray, removed: np.ndarray
    ) -> np.ndarray:
        """The official list updates, in their order (the removed ids are subtracted before this frame's);
        returns the boxes of the tracked list."""
        store = self._store
        # the official list operations also drop repeated ids; ours never hold a slot twice (matches are one
        # to one, and the tracked and lost lists stay disjoint), so joins and differences by mask are the same
        tracked = self._tracked[store.state[self._tracked] == TrackState.TRACKED]
        tracked = self._join(self._join(tracked, activated), refound)
        kept_lost = np.concatenate([self._lost[~store.mask(tracked)[self._lost]], lost])
        kept_lost = kept_lost[~store.removed[kept_lost]]
        store.removed[removed] = True
        tracked_boxes = _tlbrs(store.mean[tracked])
        keep_tracked, keep_lost = self._remove_duplicates(tracked, kept_lost, tracked_boxes)
        self._tracked, self._lost = tracked[keep_tracked], kept_lost[keep_lost]
        return tracked_boxes[keep_tracked]

    def _remove_duplicates(
        self, tracked: np.ndarray, lost: np.ndarray, tracked_boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Of a tracked and a lost track on the same object, keep the one tracked for longer; returns boolean
        masks of the tracks kept in each list."""
        keep_tracked, keep_lost = np.ones(len(tracked), bool), np.ones(len(lost), bool)
        if len(tracked) == 0 or len(lost) == 0:
            return keep_tracked, keep_lost
        p, q = np.nonzero(iou_cost(tracked_boxes, _tlbrs(self._store.mean[lost])) < DUPLICATE_IOU_COST)
        if len(p):
            age = self._store.frame_id - self._store.start_frame
            older_tracked = age[tracked[p]] > age[lost[q]]
            keep_lost[q[older_tracked]] = False
            keep_tracked[p[~older_tracked]] = False
        return keep_tracked, keep_lost

    def _output(self, tracked_boxes: np.ndarray, names: tuple[str, ...]) -> Tracks:
        shown_index = np.flatnonzero(self._store.is_activated[self._tracked])
        shown = self._tracked[shown_index]
        return Tracks(
            track_ids=self._store.track_id[shown],
            xyxy=tracked_boxes[shown_index],
            scores=self._store.score[shown],
            class_ids=self._store.class_id[shown],
            frame_index=self.frame_id - 1,
            names=tuple(names),
        )

    def _correct(self, slots: np.ndarray, det_index: np.ndarray, dets: _Detections) -> None:
        """Kalman-correct matched tracks with their detections; they are tracked (a lost one re-found with its
        old id) and confirmed."""
        if len(slots) == 0:
            return
        store = self._store
        store.mean[slots], store.covariance[slots] = kalman.update(
            store.mean[slots], store.covariance[slots], dets.xyah[det_index]
        )
        store.state[slots] = TrackState.TRACKED
        store.is_activated[slots] = True
        store.frame_id[slots] = self.frame_id
        store.score[slots] = dets.scores[det_index]
        store.class_id[slots] = dets.class_ids[det_index]

    def _start_tracks(self, det_index: np.ndarray, dets: _Detections) -> np.ndarray:
        """New tracks (unconfirmed, except in the first frame) from detections; returns their slots."""
        if len(det_index) == 0:
            return np.zeros(0, np.intp)
        store = self._store
        slots = store.allocate(len(det_index), [self._tracked, self._lost])
        store.mean[slots], store.covariance[slots] = kalman.initiate(dets.xyah[det_index])
        store.track_id[slots] = np.arange(self._last_id + 1, self._last_id + 1 + len(slots))
        self._last_id += len(slots)
        store.score[slots] = dets.scores[det_index]
        store.class_id[slots] = dets.class_ids[det_index]
        store.frame_id[slots] = store.start_frame[slots] = self.frame_id
        store.state[slots] = TrackState.TRACKED
        store.is_activated[slots] = self.frame_id == 1  # elsewhere confirmed by a match next frame
        store.removed[slots] = False
        return slots


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


def _tlbrs(means: np.ndarray) -> np.ndarray:
    """The Kalman boxes ``[N, 4]`` (x1, y1, x2, y2) of track means ``[N, 8]``."""
    boxes = kalman.xyah_to_tlwh(means[:, :4])
    boxes[:, 2:] += boxes[:, :2]
    return boxes
