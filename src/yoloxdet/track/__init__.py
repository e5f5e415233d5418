"""Multi-object tracking on detections: ByteTrack (BYTE association + Kalman filter), MOTChallenge files and
TrackEval metrics. The core (``kalman``, ``matching``, ``store``, ``byte_tracker``) needs only numpy, scipy
and lap."""

from .byte_tracker import ByteTracker, Tracks

__all__ = ["ByteTracker", "Tracks"]
