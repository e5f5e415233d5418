"""VOC AP: hand-computed cases, plus the peer's ``voc_ap`` on random curves."""

from __future__ import annotations

import numpy as np
import pytest

from yoloxdet.engine.voc_eval import VocDetections, VocGroundTruth, evaluate_voc, voc_ap


def gt(boxes, labels, difficult=None):
    return VocGroundTruth(np.asarray(boxes, float).reshape(-1, 4), np.asarray(labels), difficult)


def det(boxes, scores, labels):
    return VocDetections(
        np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), np.asarray(labels)
    )


def test_perfect_and_empty():
    truth = {1: gt([[10, 10, 50, 60]], [0])}
    perfect = evaluate_voc({1: det([[10, 10, 50, 60]], [0.9], [0])}, truth, num_classes=1)
    assert (perfect.ap50, perfect.ap50_voc07, perfect.ap50_95, perfect.ap50_95_voc07) == pytest.approx(
        (1, 1, 1, 1)
    )
    none = evaluate_voc({}, truth, num_classes=1)
    assert (none.ap50, none.ap50_voc07, none.ap50_95) == (0.0, 0.0, 0.0)


def test_hand_computed_curve():
    # TP (0.9), FP on an image without objects (0.8), TP (0.7): recall .5 .5 1, precision 1 .5 2/3
    truth = {1: gt([[0, 0, 9, 9]], [0]), 2: gt([[20, 20, 39, 39]], [0]), 3: gt([], [])}
    dets = {
        1: det([[0, 0, 9, 9]], [0.9], [0]),
        3: det([[0, 0, 9, 9]], [0.8], [0]),
        2: det([[20, 20, 39, 39]], [0.7], [0]),
    }
    m = evaluate_voc(dets, truth, num_classes=1)
    assert m.ap50 == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m.ap50_voc07 == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


def test_duplicate_is_false_positive_and_difficult_is_ignored():
    truth = {1: gt([[0, 0, 9, 9], [30, 30, 49, 49]], [0, 0], np.array([False, True]))}
    dets = {1: det([[0, 0, 9, 9], [0, 0, 9, 9], [30, 30, 49, 49]], [0.9, 0.8, 0.95], [0, 0, 0])}
    m = evaluate_voc(dets, truth, num_classes=1)
    # the difficult match (0.95) counts as nothing; then TP, FP -> recall 1 1, precision 1 .5
    assert m.ap50 == pytest.approx(1.0)
    dup_first = {1: det([[0, 0, 9, 9], [0, 0, 9, 9]], [0.9, 0.95], [0, 0])}
    assert evaluate_voc(dup_first, truth, num_classes=1).ap50 == pytest.approx(1.0)


def test_plus_one_iou_and_threshold_average():
    truth = {1: gt([[0, 0, 9, 9]], [0])}  # 10 x 10 pixels inclusive
    at_half = {1: det([[0, 0, 9, 4]], [0.9], [0])}  # IoU exactly 0.5: not above the threshold
    assert evaluate_voc(at_half, truth, num_classes=1).ap50 == 0.0
    sixty = {1: det([[0, 0, 9, 5]], [0.9], [0])}  # IoU 0.6: TP at 0.50 and 0.55 only
    m = evaluate_voc(sixty, truth, num_classes=1)
    assert m.ap50 == pytest.approx(1.0)
    assert m.ap50_95 == pytest.approx(0.2)
    assert m.ap50_95_voc07 == pytest.approx(0.2)


def test_wrong_class_and_missing_class():
    truth = {1: gt([[0, 0, 9, 9]], [1])}
    m = evaluate_voc({1: det([[0, 0, 9, 9]], [0.9], [0])}, truth, num_classes=3)
    assert m.ap50 == 0.0
    assert set(m.per_class_ap50) == {1}  # classes 0 and 2 have no ground truth and are left out


def test_voc_ap_matches_peer():
    peer = pytest.importorskip(
        "yolox.evaluators.voc_eval", reason="pixeltable-yolox (test extra) not installed"
    )
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        tp = rng.random(n) < 0.6
        recall = np.cumsum(tp) / max(tp.sum() + int(rng.integers(0, 5)), 1)
        precision = np.cumsum(tp) / np.arange(1, n + 1)
        for use07 in (True, False):
            assert voc_ap(recall, precision, use07) == pytest.approx(peer.voc_ap(recall, precision, use07))


def test_ground_truth_from_a_voc_dataset(tmp_path):
    from test_data_helpers import ITEMS, write_voc

    from yoloxdet.data.datasets import build_dataset
    from yoloxdet.data.spec import load_dataset_spec
    from yoloxdet.engine.voc_eval import ground_truth_from_dataset

    ds = build_dataset(load_dataset_spec(write_voc(tmp_path, difficult=(0,))), "train")
    truth = ground_truth_from_dataset(ds)
    assert truth[0].difficult.tolist() == [True, False]
    perfect = {i: det(g.boxes_xyxy, np.ones(len(g.labels)), g.labels) for i, g in truth.items()}
    m = evaluate_voc(perfect, truth, num_classes=len(ds.names))
    assert m.ap50 == pytest.approx(1.0) and m.ap50_95 == pytest.approx(1.0)
    assert len(m.per_class_ap50) == len({c for i in ITEMS for c in i.labels})
