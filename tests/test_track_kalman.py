"""The tracker's Kalman filter against steps computed by hand, and the ByteTracker's plain-object contract."""

from __future__ import annotations

import numpy as np
import pytest

from yoloxdet.track import ByteTracker, kalman


def test_initiate_predict_update_match_hand_computed_steps() -> None:
    # box centre (100, 50), aspect 0.5, height 40: position noise 40/20 = 2, velocity noise 40/160 = 0.25
    means, blocks = kalman.initiate(np.array([[100.0, 50.0, 0.5, 40.0]]))
    covs = kalman.full_covariance(blocks)
    np.testing.assert_array_equal(means, [[100, 50, 0.5, 40, 0, 0, 0, 0]])
    np.testing.assert_allclose(np.diag(covs[0]), [4**2, 4**2, 1e-4, 4**2, 2.5**2, 2.5**2, 1e-10, 2.5**2])

    means, blocks = kalman.predict(means, blocks)
    covs = kalman.full_covariance(blocks)
    np.testing.assert_array_equal(means, [[100, 50, 0.5, 40, 0, 0, 0, 0]])  # no velocity yet
    # P[x, x] = 16 + 6.25 (velocity carried over) + 2^2 (process noise); P[x, vx] = 6.25;
    # P[vx, vx] = 6.25 + 0.25^2
    assert covs[0, 0, 0] == pytest.approx(26.25) and covs[0, 0, 4] == pytest.approx(6.25)
    assert covs[0, 4, 4] == pytest.approx(6.3125)

    # measured 4 px to the right: S = 26.25 + 2^2 (measurement noise),
    # gain on x = 26.25 / 30.25, on vx = 6.25 / 30.25
    means, blocks = kalman.update(means, blocks, np.array([[104.0, 50.0, 0.5, 40.0]]))
    covs = kalman.full_covariance(blocks)
    assert means[0, 0] == pytest.approx(100 + 4 * 26.25 / 30.25)
    assert means[0, 4] == pytest.approx(4 * 6.25 / 30.25)
    np.testing.assert_allclose(means[0, [1, 2, 3, 5, 6, 7]], [50, 0.5, 40, 0, 0, 0], atol=1e-12)
    assert covs[0, 0, 0] == pytest.approx(26.25 - 26.25**2 / 30.25)

    moved, _ = kalman.predict(means, blocks)  # constant velocity: x advances by vx
    assert moved[0, 0] == pytest.approx(means[0, 0] + means[0, 4])


def test_block_covariances_follow_the_8x8_matrix_equations() -> None:
    # the textbook filter on full matrices (official form), against ours over random tracks and steps
    rng = np.random.default_rng(0)
    motion, observe = np.eye(8) + np.eye(8, k=4), np.eye(4, 8)
    boxes = np.column_stack(
        [rng.uniform(0, 1000, (30, 2)), rng.uniform(0.3, 3, 30), rng.uniform(10, 300, 30)]
    )
    means, blocks = kalman.initiate(boxes)
    full_means, full_covs = means.copy(), kalman.full_covariance(blocks)
    for step in range(12):
        height = full_means[:, 3:4]  # noises scale with the height before each step
        std = np.concatenate([height / 20, height / 20, 1e-2 + 0 * height, height / 20], 1)
        std_vel = np.concatenate([height / 160, height / 160, 1e-5 + 0 * height, height / 160], 1)
        process = np.stack([np.diag(v) for v in np.square(np.concatenate([std, std_vel], 1))])
        full_means = full_means @ motion.T
        full_covs = motion @ full_covs @ motion.T + process
        means, blocks = kalman.predict(means, blocks)
        np.testing.assert_allclose(means, full_means, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(kalman.full_covariance(blocks), full_covs, rtol=1e-12, atol=1e-12)

        measured = full_means[:, :4] + rng.normal(0, 2, (30, 4)) * [1, 1, 0.01, 1]
        height = full_means[:, 3:4]
        std = np.concatenate([height / 20, height / 20, 1e-1 + 0 * height, height / 20], 1)
        noise = np.stack([np.diag(v) for v in np.square(std)])
        projected = observe @ full_covs @ observe.T + noise
        gain = full_covs @ observe.T @ np.linalg.inv(projected)
        full_means = full_means + (gain @ (measured - full_means[:, :4])[:, :, None])[:, :, 0]
        full_covs = full_covs - gain @ projected @ np.swapaxes(gain, 1, 2)
        means, blocks = kalman.update(means, blocks, measured)
        np.testing.assert_allclose(means, full_means, rtol=1e-10, atol=1e-9, err_msg=f"step {step}")
        np.testing.assert_allclose(kalman.full_covariance(blocks), full_covs, rtol=1e-9, atol=1e-9)


def test_box_conversions_round_trip() -> None:
    tlwh = np.array([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_allclose(kalman.tlwh_to_xyah(tlwh), [[25, 50, 0.5, 60]])
    np.testing.assert_allclose(kalman.xyah_to_tlwh(kalman.tlwh_to_xyah(tlwh)), tlwh)


def test_tracks_keep_ids_and_ids_count_per_tracker() -> None:
    first, second = ByteTracker(), ByteTracker()
    boxes = np.array([[10, 10, 50, 90, 0.9], [200, 100, 260, 180, 0.8]])
    for step in range(5):
        tracks = first.update(boxes + np.array([step * 3, 0, step * 3, 0, 0]))
    assert tracks.track_ids.tolist() == [1, 2]
    np.testing.assert_allclose(tracks.xyxy[0], [22, 10, 62, 90], atol=1.5)  # follows the motion
    assert second.update(boxes[1:]).track_ids.tolist() == [1]  # a fresh tracker starts at 1 again


def test_a_low_score_detection_keeps_a_track_only_with_the_second_association() -> None:
    high, low = np.array([[10, 10, 50, 90, 0.9]]), np.array([[11, 10, 51, 90, 0.3]])
    byte, baseline = ByteTracker(), ByteTracker(second_association=False)
    for tracker in (byte, baseline):
        tracker.update(high)
        tracker.update(high)
    assert byte.update(low).track_ids.tolist() == [1]
    assert baseline.update(low).track_ids.tolist() == []


def test_slots_of_finished_tracks_are_reused_over_a_long_stream() -> None:
    # 3000 frames, a different set of objects every 50 frames: ~600 tracks come and go, ~12 alive at once
    rng = np.random.default_rng(0)
    tracker = ByteTracker(frame_rate=30, track_buffer=10)
    for _ in range(60):
        boxes = rng.uniform(0, 1000, (12, 2))
        boxes = np.concatenate([boxes, boxes + rng.uniform(20, 60, (12, 2)), rng.uniform(0.6, 1, (12, 1))], 1)
        for _frame in range(50):
            tracks = tracker.update(boxes)
    assert len(tracks) == 12 and tracks.track_ids.max() > 600  # hundreds of tracks started and ended
    assert tracker._store.capacity <= 128  # in slots the finished ones left


def test_bad_detections_array_names_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        ByteTracker().update(np.zeros((3, 4)))
