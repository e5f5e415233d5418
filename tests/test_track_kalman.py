"""The tracker's Kalman filter against steps computed by hand, and the ByteTracker's plain-object contract."""

from __future__ import annotations

import numpy as np
import pytest

from yoloxdet.track import ByteTracker, kalman


def test_initiate_predict_update_match_hand_computed_steps() -> None:
    # box centre (100, 50), aspect 0.5, height 40: position noise 40/20 = 2, velocity noise 40/160 = 0.25
    means, covs = kalman.initiate(np.array([[100.0, 50.0, 0.5, 40.0]]))
    np.testing.assert_array_equal(means, [[100, 50, 0.5, 40, 0, 0, 0, 0]])
    np.testing.assert_allclose(np.diag(covs[0]), [4**2, 4**2, 1e-4, 4**2, 2.5**2, 2.5**2, 1e-10, 2.5**2])

    means, covs = kalman.predict(means, covs)
    np.testing.assert_array_equal(means, [[100, 50, 0.5, 40, 0, 0, 0, 0]])  # no velocity yet
    # P[x, x] = 16 + 6.25 (velocity carried over) + 2^2 (process noise); P[x, vx] = 6.25;
    # P[vx, vx] = 6.25 + 0.25^2
    assert covs[0, 0, 0] == pytest.approx(26.25) and covs[0, 0, 4] == pytest.approx(6.25)
    assert covs[0, 4, 4] == pytest.approx(6.3125)

    # measured 4 px to the right: S = 26.25 + 2^2 (measurement noise),
    # gain on x = 26.25 / 30.25, on vx = 6.25 / 30.25
    means, covs = kalman.update(means, covs, np.array([[104.0, 50.0, 0.5, 40.0]]))
    assert means[0, 0] == pytest.approx(100 + 4 * 26.25 / 30.25)
    assert means[0, 4] == pytest.approx(4 * 6.25 / 30.25)
    np.testing.assert_allclose(means[0, [1, 2, 3, 5, 6, 7]], [50, 0.5, 40, 0, 0, 0], atol=1e-12)
    assert covs[0, 0, 0] == pytest.approx(26.25 - 26.25**2 / 30.25)

    moved, _ = kalman.predict(means, covs)  # constant velocity: x advances by vx
    assert moved[0, 0] == pytest.approx(means[0, 0] + means[0, 4])


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


def test_bad_detections_array_names_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        ByteTracker().update(np.zeros((3, 4)))
