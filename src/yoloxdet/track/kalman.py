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


def _diag(std: np.ndarray) -> np.ndarray:
    """``[N, K]`` standard deviations -> ``[N, K, K]`` diagonal covariances."""
    out = np.zeros((*std.shape, std.shape[-1]))
    index = np.arange(std.shape[-1])
    out[:, index, index] = std**2
    return out


def _height_scaled(height: np.ndarray, weight: float, aspect: float) -> np.ndarray:
    """Standard deviations ``[N, 4]``: ``weight * h`` for x, y, h and a constant for the aspect ratio."""
    std = np.outer(height, np.full(4, weight))
    std[:, 2] = aspect
    return std


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from boxes ``[N, 4]`` (x, y, a, h): velocities 0, uncertainty scaled by the height."""
    measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
    means = np.concatenate([measurements, np.zeros_like(measurements)], axis=1)
    height = measurements[:, 3]
    std = np.concatenate(
        [
            _height_scaled(height, 2 * STD_WEIGHT_POSITION, 1e-2),
            _height_scaled(height, 10 * STD_WEIGHT_VELOCITY, 1e-5),
        ],
        axis=1,
    )
    return means, _diag(std)


def predict(means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: ``mean' = F mean``, ``P' = F P F^T + Q`` with Q scaled by the current height."""
    height = means[:, 3]
    std = np.concatenate(
        [
            _height_scaled(height, STD_WEIGHT_POSITION, 1e-2),
            _height_scaled(height, STD_WEIGHT_VELOCITY, 1e-5),
        ],
        axis=1,
    )
    means = means @ MOTION.T
    covariances = MOTION @ covariances @ MOTION.T + _diag(std)
    return means, covariances


def project(means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The state in measurement space: ``(x, y, a, h)`` and its covariance plus the measurement noise R."""
    std = _height_scaled(means[:, 3], STD_WEIGHT_POSITION, 1e-1)
    return means[:, :4], covariances[:, :4, :4] + _diag(std)


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
