"""The constant-velocity Kalman filter of ByteTrack (from DeepSORT), batched over tracks.

State (8): box centre ``x, y``, aspect ratio ``a = w / h``, height ``h`` and their velocities. The box ``(x,
y, a, h)`` is observed directly. The noise is proportional to the box height (``1/20`` of it for positions,
``1/160`` for velocities); the aspect ratio gets small fixed noise. Every function takes and returns stacks
over N tracks, so one call moves all tracks of a frame; the official code loops over tracks for the update,
the numbers are the same to float rounding.

Shapes: means ``[N, 8]``, covariances ``[N, 8, 8]``, measurements ``[N, 4]``.
"""

from __future__ import annotations

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160

# x' = x + v (dt = 1 frame)
MOTION = np.eye(8) + np.eye(8, k=4)


# Noise standard deviations per state entry: ``height * HEIGHT_SCALED + FIXED`` (the aspect ratio's is fixed).
_POSITION = np.array([STD_WEIGHT_POSITION, STD_WEIGHT_POSITION, 0.0, STD_WEIGHT_POSITION])
_VELOCITY = np.array([STD_WEIGHT_VELOCITY, STD_WEIGHT_VELOCITY, 0.0, STD_WEIGHT_VELOCITY])
_INITIATE_SCALED = np.concatenate([2 * _POSITION, 10 * _VELOCITY])
_INITIATE_FIXED = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
_PROCESS_SCALED = np.concatenate([_POSITION, _VELOCITY])
_PROCESS_FIXED = _INITIATE_FIXED
_MEASUREMENT_SCALED = _POSITION
_MEASUREMENT_FIXED = np.array([0, 0, 1e-1, 0])


def _variances(height: np.ndarray, scaled: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """``[N, K]`` noise variances: ``(height * scaled + fixed) ** 2`` per entry."""
    return np.square(height[:, None] * scaled + fixed)


def _add_to_diagonal(matrices: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``matrices [N, K, K]`` with ``values [N, K]`` added to their diagonals, in place."""
    index = np.arange(values.shape[1])
    matrices[:, index, index] += values
    return matrices


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from boxes ``[N, 4]`` (x, y, a, h): velocities 0, uncertainty scaled by the height."""
    measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
    means = np.concatenate([measurements, np.zeros_like(measurements)], axis=1)
    variances = _variances(measurements[:, 3], _INITIATE_SCALED, _INITIATE_FIXED)
    return means, _add_to_diagonal(np.zeros((len(means), 8, 8)), variances)


def predict(means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: ``mean' = F mean``, ``P' = F P F^T + Q`` with Q scaled by the current height."""
    process = _variances(means[:, 3], _PROCESS_SCALED, _PROCESS_FIXED)
    covariances = _add_to_diagonal(MOTION @ covariances @ MOTION.T, process)
    return means @ MOTION.T, covariances


def project(means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The state in measurement space: ``(x, y, a, h)`` and its covariance plus the measurement noise R."""
    noise = _variances(means[:, 3], _MEASUREMENT_SCALED, _MEASUREMENT_FIXED)
    return means[:, :4], _add_to_diagonal(covariances[:, :4, :4].copy(), noise)


def update(
    means: np.ndarray, covariances: np.ndarray, measurements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct predicted states with measured boxes ``[N, 4]`` (x, y, a, h): the standard Kalman update."""
    projected_means, projected_covs = project(means, covariances)
    # gain K = P H^T S^-1; S is symmetric, so K^T = S^-1 (H P) = solve(S, P[:4, :])
    gain = np.swapaxes(np.linalg.solve(projected_covs, covariances[:, :4, :]), 1, 2)  # [N, 8, 4]
    innovation = np.asarray(measurements, dtype=np.float64) - projected_means
    means = means + np.einsum("nij,nj->ni", gain, innovation)
    covariances = covariances - gain @ projected_covs @ np.swapaxes(gain, 1, 2)
    return means, covariances


def tlwh_to_xyah(boxes_tlwh: np.ndarray) -> np.ndarray:
    """``[N, 4]`` (left, top, w, h) -> (centre x, centre y, w / h, h)."""
    boxes = np.array(boxes_tlwh, dtype=np.float64).reshape(-1, 4)
    boxes[:, :2] += boxes[:, 2:] / 2
    boxes[:, 2] /= boxes[:, 3]
    return boxes


def xyah_to_tlwh(boxes_xyah: np.ndarray) -> np.ndarray:
    """``[N, 4]`` (centre x, centre y, w / h, h) -> (left, top, w, h)."""
    boxes = np.array(boxes_xyah, dtype=np.float64).reshape(-1, 4)
    boxes[:, 2] *= boxes[:, 3]
    boxes[:, :2] -= boxes[:, 2:] / 2
    return boxes
