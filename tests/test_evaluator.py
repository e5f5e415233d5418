"""COCO evaluation: perfect / empty / hand-computed cases, faster-coco-eval vs pycocotools, category-id
mapping with non-contiguous ids, iscrowd handling, and the prediction loop (no clipping, unreadable images
skipped)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from yoloxdet.engine.evaluator import (
    CocoMetrics,
    category_ids,
    category_names,
    evaluate_coco,
    predict_coco_results,
    to_coco_results,
)
from yoloxdet.inference.results import Detections


def _gt(annotations, categories=((3, "cat"), (7, "dog"), (11, "eel")), images=((1, 100, 200), (2, 100, 200))):
    anns = [
        {"id": i + 1, "image_id": img, "category_id": cat, "bbox": list(bbox), "area": bbox[2] * bbox[3],
         "iscrowd": crowd}
        for i, (img, cat, bbox, crowd) in enumerate(annotations)
    ]  # fmt: skip
    return {
        "images": [{"id": i, "height": h, "width": w, "file_name": f"{i}.png"} for i, h, w in images],
        "annotations": anns,
        # deliberately unsorted, so index order != list order
        "categories": [{"id": c, "name": n} for c, n in reversed(categories)],
    }


SIMPLE = [(1, 3, (10, 10, 40, 30), 0), (1, 11, (60, 20, 30, 50), 0), (2, 7, (5, 5, 80, 60), 0)]


def _perfect(gt):
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
        if not a["iscrowd"]
    ]


@pytest.mark.parametrize("engine", ["faster", "pycocotools"])
def test_perfect_predictions_give_ap_one_and_none_give_zero(engine):
    gt = _gt(SIMPLE)
    perfect = evaluate_coco(gt, _perfect(gt), engine=engine)
    assert perfect.ap == pytest.approx(1.0) and perfect.ap50 == pytest.approx(1.0)
    assert perfect.per_class_ap == pytest.approx({"cat": 1.0, "dog": 1.0, "eel": 1.0})
    empty = evaluate_coco(gt, [], engine=engine)
    assert empty.ap == 0.0 and empty.ap50 == 0.0 and empty.num_detections == 0


def test_half_recall_gives_the_hand_computed_101_point_ap():
    gt = _gt([(1, 3, (10, 10, 40, 30), 0), (2, 3, (5, 5, 80, 60), 0)], categories=((3, "cat"),))
    one_found = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 30], "score": 0.8}]
    # precision 1 up to recall 0.5 (51 of the 101 recall points), nothing beyond
    assert evaluate_coco(gt, one_found).ap == pytest.approx(51 / 101)


def test_category_ids_map_contiguous_indices_through_sorted_ids():
    gt = _gt(SIMPLE)
    assert category_ids(gt) == [3, 7, 11]
    assert category_names(gt) == ["cat", "dog", "eel"]
    # detections in contiguous indices and xyxy -> COCO ids and xywh -> back to AP 1
    results = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        index = category_ids(gt).index(a["category_id"])
        results += to_coco_results(
            a["image_id"], np.array([[x, y, x + w, y + h]]), np.array([0.5]), [index], [3, 7, 11]
        )
    assert {r["category_id"] for r in results} == {3, 7, 11}
    assert results[0]["bbox"] == pytest.approx([10, 10, 40, 30])
    from_tensors = to_coco_results(
        1, torch.tensor([[10.0, 10, 50, 40]]), torch.tensor([0.5]), torch.tensor([0]), [3]
    )
    assert from_tensors == [{"image_id": 1, "category_id": 3, "bbox": [10.0, 10.0, 40.0, 30.0], "score": 0.5}]
    assert evaluate_coco(gt, results).ap == pytest.approx(1.0)
    # the list order of the categories (11, 7, 3) would be the wrong mapping
    wrong = [dict(r, category_id=[11, 7, 3][[3, 7, 11].index(r["category_id"])]) for r in results]
    assert evaluate_coco(gt, wrong).ap < 0.5


def test_crowd_ground_truth_is_neither_a_miss_nor_a_false_positive():
    gt = _gt([*SIMPLE, (2, 3, (100, 40, 60, 50), 1)])
    perfect = _perfect(gt)
    assert evaluate_coco(gt, perfect).ap == pytest.approx(1.0)
    on_crowd = [*perfect, {"image_id": 2, "category_id": 3, "bbox": [100, 40, 60, 50], "score": 0.95}]
    assert evaluate_coco(gt, on_crowd).ap == pytest.approx(1.0)
    # the same box without the crowd flag is a real object: missing it lowers AP
    not_crowd = _gt([*SIMPLE, (2, 3, (100, 40, 60, 50), 0)])
    assert evaluate_coco(not_crowd, perfect).ap < 1.0


def test_faster_coco_eval_matches_pycocotools_on_noisy_predictions(coco128):
    gt = json.loads((coco128 / "annotations" / "instances.json").read_text())
    rng = np.random.default_rng(0)
    results = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
        category = a["category_id"] if rng.random() > 0.1 else int(rng.choice(category_ids(gt)))
        if rng.random() > 0.15:
            bbox = [x + jitter[0], y + jitter[1], max(w + jitter[2], 1), max(h + jitter[3], 1)]
            results.append(
                {"image_id": a["image_id"], "category_id": category, "bbox": bbox, "score": rng.random()}
            )
    for image in gt["images"]:  # false positives
        w, h = image["width"], image["height"]
        for _ in range(3):
            bbox = [
                rng.uniform(0, w / 2),
                rng.uniform(0, h / 2),
                rng.uniform(5, w / 2),
                rng.uniform(5, h / 2),
            ]
            category = int(rng.choice(category_ids(gt)))
            results.append(
                {"image_id": image["id"], "category_id": category, "bbox": bbox, "score": rng.random()}
            )
    faster = evaluate_coco(gt, results, engine="faster")
    reference = evaluate_coco(gt, results, engine="pycocotools")
    assert 0.1 < faster.ap < 0.9, "the test needs a non-trivial AP"
    np.testing.assert_allclose(faster.stats, reference.stats, atol=1e-6)
    for name, ap in reference.per_class_ap.items():
        assert (math.isnan(ap) and math.isnan(faster.per_class_ap[name])) or abs(
            ap - faster.per_class_ap[name]
        ) < 1e-6


def test_metrics_serialise_and_format():
    metrics = CocoMetrics(tuple(float(i) / 20 for i in range(12)), {"cat": 0.5, "dog": float("nan")}, 2, 5)
    as_dict = json.loads(json.dumps(metrics.to_dict()))
    assert as_dict["AP"] == 0.0 and as_dict["AP50"] == 0.05 and as_dict["APl"] == 0.25
    assert as_dict["per_class_AP"] == {"cat": 0.5, "dog": None}
    text = metrics.format()
    assert "AP50 0.050" in text and "cat" in text and "dog" in text


class _FixedPredictor:
    """Returns the same detections for every image: one box that extends past the right edge."""

    batch_size = 2

    def __init__(self):
        self.calls = []

    def predict_arrays(self, images_bgr, image_paths=None, *, clip=True):
        self.calls.append((len(images_bgr), clip))
        box = np.array([[150.0, 10.0, 260.0, 50.0]], np.float32)  # image width is 200
        return [
            Detections(
                box, np.array([0.7], np.float32), np.array([2]), ("cat", "dog", "eel"), image.shape[:2]
            )
            for image in images_bgr
        ]


def test_prediction_loop_keeps_unclipped_boxes_and_skips_unreadable_images(tmp_path, caplog):
    gt = _gt(SIMPLE, images=((1, 100, 200), (2, 100, 200), (3, 100, 200)))
    Image.new("RGB", (200, 100)).save(tmp_path / "1.png")
    (tmp_path / "2.png").write_bytes(b"not an image")
    Image.new("RGB", (200, 100)).save(tmp_path / "3.png")
    predictor = _FixedPredictor()
    with caplog.at_level(logging.WARNING):
        results = predict_coco_results(predictor, gt, tmp_path, progress=False)
    assert predictor.calls == [(1, False), (1, False)]
    assert [r["image_id"] for r in results] == [1, 3]
    assert results[0]["category_id"] == 11
    assert results[0]["bbox"] == pytest.approx([150, 10, 110, 40])
    assert any("2.png" in r.getMessage() for r in caplog.records)


def test_prediction_loop_accepts_samples_from_any_reader():
    gt = _gt(SIMPLE, images=((1, 100, 200), (2, 100, 200), (3, 100, 200)))
    image = np.zeros((100, 200, 3), np.uint8)
    predictor = _FixedPredictor()
    results = predict_coco_results(predictor, gt, [(1, image), (2, None), (3, image)], progress=False)
    assert predictor.calls == [(1, False), (1, False)]
    assert [r["image_id"] for r in results] == [1, 3]
