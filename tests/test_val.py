"""``yoloxdet val`` on real weights and data against an independent re-implementation of the official
evaluation: onnxruntime on the official yolox_nano.onnx, the official letterbox written here with cv2, numpy
decoding, torchvision batched_nms and pycocotools. Nothing from yoloxdet is used on the reference side."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torchvision

from yoloxdet.cli import main
from yoloxdet.engine.evaluator import evaluate_coco

SIZE = 416
STRIDES = (8, 16, 32)


def _official_grid() -> tuple[np.ndarray, np.ndarray]:
    """Cell (x, y) and stride of every output row, levels 8 -> 16 -> 32, row-major (demo_postprocess)."""
    cells, strides = [], []
    for stride in STRIDES:
        n = SIZE // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cells.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def _reference_results(onnx_path, gt, image_dir, conf=0.001, nms=0.65) -> list[dict]:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    cells, strides = _official_grid()
    cat_ids = sorted(c["id"] for c in gt["categories"])
    results = []
    for info in gt["images"]:
        image = cv2.imread(str(image_dir / info["file_name"]))
        h, w = image.shape[:2]
        r = min(SIZE / h, SIZE / w)
        resized = cv2.resize(image, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
        padded = np.full((SIZE, SIZE, 3), 114, np.uint8)
        padded[: resized.shape[0], : resized.shape[1]] = resized
        blob = padded.transpose(2, 0, 1)[None].astype(np.float32)
        out = session.run(None, {session.get_inputs()[0].name: blob})[0][
            0
        ]  # [A, 85] raw boxes, sigmoid scores
        centre = (out[:, :2] + cells) * strides
        size = np.exp(out[:, 2:4]) * strides
        class_conf, class_pred = out[:, 5:].max(axis=1), out[:, 5:].argmax(axis=1)
        scores = out[:, 4] * class_conf
        keep = scores >= conf
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)[keep]
        kept = torchvision.ops.batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores[keep]), torch.from_numpy(class_pred[keep]), nms
        ).numpy()
        for box, score, cls in zip(boxes[kept] / r, scores[keep][kept], class_pred[keep][kept]):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {"image_id": info["id"], "category_id": cat_ids[cls], "bbox": [x1, y1, x2 - x1, y2 - y1],
                 "score": float(score)}
            )  # fmt: skip
    return results


def _pycocotools_ap(gt_path, results) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO(str(gt_path))
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])


@pytest.mark.slow
def test_val_on_official_nano_matches_an_independent_onnxruntime_evaluation(
    coco128, nano_onnx, tmp_path, capsys
):
    gt_path = coco128 / "annotations" / "instances.json"
    gt = json.loads(gt_path.read_text())
    reference_ap = _pycocotools_ap(gt_path, _reference_results(nano_onnx, gt, coco128 / "images"))

    metrics_path, detections_path = tmp_path / "metrics.json", tmp_path / "dets.json"
    argv = [
        "val",
        str(nano_onnx),
        "--model",
        "yolox-nano",
        "--size",
        "416",
        "--images",
        str(coco128 / "images"),
    ]
    argv += [
        "--annotations",
        str(gt_path),
        "-o",
        str(metrics_path),
        "--save-detections",
        str(detections_path),
    ]
    assert main([*argv, "--no-progress"]) == 0
    metrics = json.loads(metrics_path.read_text())
    printed = capsys.readouterr().out
    print(f"yoloxdet val AP {metrics['AP']:.4f}, independent onnxruntime + pycocotools AP {reference_ap:.4f}")

    assert 0.32 < reference_ap < 0.36  # the official nano on coco128 at 416 (about 0.337)
    assert abs(metrics["AP"] - reference_ap) < 0.002
    assert (
        metrics["num_images"] == 128
        and metrics["model"] == "yolox-nano"
        and metrics["input_size"] == [416, 416]
    )
    assert set(metrics["per_class_AP"]) == {c["name"] for c in gt["categories"]}
    assert "AP50" in printed and "person" in printed
    # faster-coco-eval (used by val) and pycocotools give the same numbers on these real predictions
    detections = json.loads(detections_path.read_text())
    reference_stats = evaluate_coco(gt, detections, engine="pycocotools").stats
    np.testing.assert_allclose([metrics[k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")],
                               reference_stats[:6], atol=1e-6)  # fmt: skip


def test_val_rejects_bad_annotations_and_class_count_mismatch(tmp_path, nano_onnx, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    argv = ["val", str(nano_onnx), "--model", "yolox-nano", "--images", str(tmp_path), "--annotations"]
    assert main([*argv, str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    assert main([*argv, str(small)]) == 2
    assert "80 classes" in capsys.readouterr().err


def _coco_subset_as_voc(coco128, root, count: int):
    """The first ``count`` coco128 images as a COCO JSON subset and as a VOC dataset of the same boxes."""
    gt = json.loads((coco128 / "annotations" / "instances.json").read_text())
    images = sorted(gt["images"], key=lambda im: im["id"])[:count]
    ids = {im["id"] for im in images}
    anns = [a for a in gt["annotations"] if a["image_id"] in ids and not a.get("iscrowd", 0)]
    subset = {"images": images, "annotations": anns, "categories": gt["categories"]}
    (root / "subset.json").write_text(json.dumps(subset))
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    voc = root / "voc" / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    by_id = {c["id"]: c["name"] for c in gt["categories"]}
    for im in images:
        stem = im["file_name"].rsplit(".", 1)[0]
        (voc / "JPEGImages" / im["file_name"]).write_bytes(
            (coco128 / "images" / im["file_name"]).read_bytes()
        )
        objects = "".join(
            f"<object><name>{by_id[a['category_id']]}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{a['bbox'][0] + 1:.0f}</xmin><ymin>{a['bbox'][1] + 1:.0f}</ymin>"
            f"<xmax>{a['bbox'][0] + a['bbox'][2] + 1:.0f}</xmax>"
            f"<ymax>{a['bbox'][1] + a['bbox'][3] + 1:.0f}</ymax>"
            "</bndbox></object>"
            for a in anns
            if a["image_id"] == im["id"]
        )
        (voc / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{im['file_name']}</filename>{objects}</annotation>"
        )
    (voc / "ImageSets" / "Main" / "test.txt").write_text(
        "".join(im["file_name"].rsplit(".", 1)[0] + "\n" for im in images)
    )
    data = root / "voc" / "data.yaml"
    data.write_text(json.dumps({"format": "voc", "val": {"dir": "VOC2007", "set": "test"}, "names": names}))
    return data


def test_val_on_a_voc_dataset_file_reports_coco_and_voc_ap(coco128, nano_onnx, tmp_path):
    data = _coco_subset_as_voc(coco128, tmp_path, count=12)
    common = [str(nano_onnx), "--model", "yolox-nano", "--no-progress"]
    assert (
        main(
            [
                "val",
                *common,
                "--images",
                str(coco128 / "images"),
                "--annotations",
                str(tmp_path / "subset.json"),
                "-o",
                str(tmp_path / "coco.json"),
            ]
        )
        == 0
    )
    assert (
        main(["val", *common, "--data", str(data), "--split", "val", "-o", str(tmp_path / "voc.json")]) == 0
    )
    coco, voc = (
        json.loads((tmp_path / "coco.json").read_text()),
        json.loads((tmp_path / "voc.json").read_text()),
    )
    assert coco["AP50"] > 0.3, "the official weights must detect on these images"
    # the same boxes through the VOC reader (integer, 0-based corners) score nearly the same COCO AP
    assert abs(voc["AP"] - coco["AP"]) < 0.02
    assert abs(voc["voc"]["AP50"] - coco["AP50"]) < 0.08  # all-point VOC AP vs COCO's 101-point AP
    assert 0 < voc["voc"]["AP50_95"] < voc["voc"]["AP50"] <= 1
    assert set(voc["voc"]["per_class_AP50"]) <= set(json.loads(data.read_text())["names"])


def test_val_needs_a_ground_truth_source(nano_onnx, tmp_path):
    assert main(["val", str(nano_onnx), "--model", "yolox-nano", "--data", "x.yaml", "--images", "y"]) == 2
    assert main(["val", str(nano_onnx), "--model", "yolox-nano"]) == 2
