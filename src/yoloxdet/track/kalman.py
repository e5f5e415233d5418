"""The constant-velocity Kalman filter of ByteTrack (from DeepSORT), batched over tracks.

State (8): box centre ``x, y``, aspect ratio ``a = w / h``, height ``h`` and their velocities. The box ``(x,
y, a, h)`` is observed directly. The noise is proportional to the box height (``1/20`` of it for positions,
``1/160`` for velocities); the aspect ratio gets small fixed noise.

The motion couples each coordinate only with its own velocity, and the initial, process and measurement
noises are diagonal, so the 8x8 covariance of the official code never has a nonzero outside the four 2x2
blocks (coordinate, its velocity): the filter is four independent 2-state filters. This module keeps only
those blocks and computes each entry with the same operations, in the same order, as the official matrix
products (the products' other terms are exact zeros), so a frame's steps are a few array operations over all
tracks, and the results equal the 8x8 matrix form (``F P F^T + Q``, ``np.linalg.solve`` for the gain) to the
bit. The official code solves for the gain with a Cholesky factorisation instead; that agrees to float
rounding.

Shapes: means ``[N, 8]``; covariances ``[N, 2, 2, 4]`` with ``covariances[n, r, c, d]`` the entry ``(4 r + d,
4 c + d)`` of the full matrix (``r, c``: 0 position, 1 velocity; ``d``: coordinate), :func:`full_covariance`
gives the ``[N, 8, 8]`` matrices; measurements ``[N, 4]``.
"""

from __future__ import annotations

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160

# Noise standard deviations per state entry: ``height * HEIGHT_SCALED + FIXED`` (the aspect ratio's is fixed).
_POSITION = np.array([STD_WEIGHT_POSITION, STD_WEIGHT_POSITION, 0.0, STD_WEIGHT_POSITION])
_VELOCITY = np.array([STD_WEIGHT_VELOCITY, STD_WEIGHT_VELOCITY, 0.0, STD_WEIGHT_VELOCITY])
_INITIATE_SCALED = np.stack([2 * _POSITION, 10 * _VELOCITY])
_INITIATE_FIXED = np.array([[0, 0, 1e-2, 0], [0, 0, 1e-5, 0]])
_PROCESS_SCALED = np.stack([_POSITION, _VELOCITY])
_PROCESS_FIXED = _INITIATE_FIXED
_MEASUREMENT_SCALED = _POSITION
_MEASUREMENT_FIXED = np.array([0, 0, 1e-1, 0])


def _variances(height: np.ndarray, scaled: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Noise variances ``(height * scaled + fixed) ** 2``: ``[N, *scaled.shape]``."""
    return np.square(height.reshape(-1, *(1,) * scaled.ndim) * scaled + fixed)


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from boxes ``[N, 4]`` (x, y, a, h): velocities 0, uncertainty scaled by the height."""
    measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
    means = np.concatenate([measurements, np.zeros_like(measurements)], axis=1)
    variances = _variances(measurements[:, 3], _INITIATE_SCALED, _INITIATE_FIXED)  # [N, 2, 4]
    covariances = np.zeros((len(means), 2, 2, 4))
    covariances[:, 0, 0], covariances[:, 1, 1] = variances[:, 0], variances[:, 1]
    return means, covariances


def predict(means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: ``mean' = F mean``, ``P' = F P F^T + Q`` with Q scaled by the current height."""
    process = _variances(means[:, 3], _PROCESS_SCALED, _PROCESS_FIXED)  # [N, 2, 4]
    pp, pv, vp, vv = covariances[:, 0, 0], covariances[:, 0, 1], covariances[:, 1, 0], covariances[:, 1, 1]
    predicted = np.empty_like(covariances)
    predicted[:, 0, 0] = (pp + vp) + (pv + vv) + process[:, 0]  # the grouping of (F P) F^T
    predicted[:, 0, 1] = pv + vv
    predicted[:, 1, 0] = vp + vv
    predicted[:, 1, 1] = vv + process[:, 1]
    moved = means.copy()
    moved[:, :4] += means[:, 4:]
    return moved, predicted


def update(
    means: np.ndarray, covariances: np.ndarray, measurements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct predicted states with measured boxes ``[N, 4]`` (x, y, a, h): the standard Kalman update."""
    # innovation covariance S = H P H^T + R is diagonal: per coordinate, position variance + noise
    innovation_var = covariances[:, 0, 0] + _variances(means[:, 3], _MEASUREMENT_SCALED, _MEASUREMENT_FIXED)
    # gain K = P H^T S^-1, per coordinate: (position, velocity) rows of P's block over S; times the
    # reciprocal, as LAPACK's solve does with a diagonal S (the numbers of the matrix form, to the bit)
    reciprocal = 1 / innovation_var
    gain_pos = covariances[:, 0, 0] * reciprocal
    gain_vel = covariances[:, 0, 1] * reciprocal
    innovation = np.asarray(measurements, dtype=np.float64) - means[:, :4]
    corrected = np.empty_like(means)
    corrected[:, :4] = means[:, :4] + gain_pos * innovation
    corrected[:, 4:] = means[:, 4:] + gain_vel * innovation
    # P - K S K^T, entry by entry as the matrix product (K S) K^T groups it
    gain_pos_s, gain_vel_s = gain_pos * innovation_var, gain_vel * innovation_var
    updated = np.empty_like(covariances)
    updated[:, 0, 0] = covariances[:, 0, 0] - gain_pos_s * gain_pos
    updated[:, 0, 1] = covariances[:, 0, 1] - gain_pos_s * gain_vel
    updated[:, 1, 0] = covariances[:, 1, 0] - gain_vel_s * gain_pos
    updated[:, 1, 1] = covariances[:, 1, 1] - gain_vel_s * gain_vel
    return corrected, updated


def full_covariance(covariances: np.ndarray) -> np.ndarray:
    """The ``[N, 8, 8]`` covariance matrices of ``[N, 2, 2, 4]`` blocks (zeros outside them)."""
    full = np.zeros((len(covariances), 2, 4, 2, 4))
    index = np.arange(4)
    full[:, :, index, :, index] = np.moveaxis(covariances, 3, 0)
    return full.reshape(-1, 8, 8)


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
