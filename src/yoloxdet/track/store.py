"""Every track's state in contiguous arrays (structure of arrays), one slot per track.

The tracker's lists (tracked, lost, the pool of an association) are arrays of slot indices into these arrays,
so a frame's Kalman steps, IoU boxes and bookkeeping are a few numpy calls over all tracks at once instead of
stacking per-track objects into arrays and scattering the results back every frame. A slot is taken when a
track starts and is free again once the track is in no list; the arrays double when they run out of slots.
"""

from __future__ import annotations

import numpy as np


class TrackState:
    """A track's state, as stored in :attr:`TrackStore.state`; plain ints, which numpy compares with an array
    at C speed (an ``IntEnum`` member takes a slow conversion on every comparison)."""

    NEW = 0
    TRACKED = 1
    LOST = 2
    REMOVED = 3


class TrackStore:
    """Per-slot track state: Kalman mean and covariance, and the bookkeeping the association reads and writes.

    Attributes (indexed by slot):
        mean: [S, 8] float64 Kalman state (x, y, a, h and their velocities).
        covariance: [S, 2, 2, 4] float64, the nonzero blocks of the 8x8 matrix (see :mod:`.kalman`).
        track_id: [S] int64, the id the tracker gave the track.
        score, class_id: of the detection the track was last matched with.
        frame_id: last frame it was matched in (the official ``end_frame``); start_frame: frame it started in.
        state: [S] int8 :class:`TrackState`.
        is_activated: [S] bool, confirmed (matched at least once after it started, or started in frame 1).
        removed: [S] bool, the track's id is in the tracker's removed set (never again kept in the lost list).
    """

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = 0
        self.mean = np.zeros((0, 8))
        self.covariance = np.zeros((0, 2, 2, 4))  # blocks, see kalman.py
        self.track_id = np.zeros(0, np.int64)
        self.score = np.zeros(0)
        self.class_id = np.zeros(0, np.int64)
        self.frame_id = np.zeros(0, np.int64)
        self.start_frame = np.zeros(0, np.int64)
        self.state = np.zeros(0, np.int8)
        self.is_activated = np.zeros(0, bool)
        self.removed = np.zeros(0, bool)
        self._grow(capacity)

    _FIELDS = (
        "mean",
        "covariance",
        "track_id",
        "score",
        "class_id",
        "frame_id",
        "start_frame",
        "state",
        "is_activated",
        "removed",
    )

    def _grow(self, capacity: int) -> None:
        for name in self._FIELDS:
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.capacity] = old
            setattr(self, name, new)
        self.capacity = capacity

    def allocate(self, count: int, in_use: list[np.ndarray]) -> np.ndarray:
        """``count`` free slots (none of those in the ``in_use`` slot arrays); the arrays grow if needed."""
        used = np.zeros(self.capacity, bool)
        for slots in in_use:
            used[slots] = True
        free = np.flatnonzero(~used)
        if len(free) < count:
            start = self.capacity
            self._grow(max(2 * self.capacity, self.capacity + count))
            free = np.concatenate([free, np.arange(start, self.capacity)])
        return free[:count]

    def mask(self, slots: np.ndarray) -> np.ndarray:
        """A boolean array over slots, True at ``slots``."""
        marked = np.zeros(self.capacity, bool)
        marked[slots] = True
        return marked
