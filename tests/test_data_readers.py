"""Readers: COCO JSON on coco128, generated VOC and YOLO fixtures, one description file for all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import ITEMS, NAMES, write_coco, write_voc, write_yaml, write_yolo

from yoloxdet.data.datasets import build_dataset
from yoloxdet.data.spec import DatasetSpecError, load_dataset_spec, parse_dataset_spec


def coco128_dataset(root: Path):
    spec = parse_dataset_spec(
        {"format": "coco", "train": {"images": "images", "annotations": "annotations/instances.json"}},
        base=root,
    )
    return build_dataset(spec, "train")


def test_coco128_matches_official_conversion(coco128):
    ds = coco128_dataset(coco128)
    gt = json.loads((coco128 / "annotations" / "instances.json").read_text())
    cat_ids = sorted(c["id"] for c in gt["categories"])
    assert ds.category_ids == tuple(cat_ids) and len(ds.names) == 80 and ds.names[0] == "person"
    assert len(ds) == len(gt["images"])  # negatives kept
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    expected: dict[int, list] = {}
    for ann in gt["annotations"]:  # official load_anno_from_ids, written out independently
        if ann["iscrowd"]:
            continue
        width, height = sizes[ann["image_id"]]
        x1, y1 = max(0, ann["bbox"][0]), max(0, ann["bbox"][1])
        x2 = min(width, x1 + max(0, ann["bbox"][2]))
        y2 = min(height, y1 + max(0, ann["bbox"][3]))
        if ann["area"] > 0 and x2 > x1 and y2 > y1:
            expected.setdefault(ann["image_id"], []).append(
                [x1, y1, x2, y2, cat_ids.index(ann["category_id"])]
            )
    for i in range(len(ds)):
        boxes, labels = ds.annotations(i)
        want = np.asarray(expected.get(ds.records[i].image_id, np.zeros((0, 5))), np.float32).reshape(-1, 5)
        np.testing.assert_allclose(boxes, want[:, :4], rtol=1e-6)
        np.testing.assert_array_equal(labels, want[:, 4].astype(np.int64))
    sample = ds.load(0)
    assert sample.image.dtype == np.uint8 and sample.image.shape[2] == 3
    assert sample.image.shape[:2] == (ds.records[0].height, ds.records[0].width)


def test_coco_to_coco_keeps_crowd_and_original_ids(coco128):
    ds = coco128_dataset(coco128)
    gt = ds.to_coco()
    assert len(gt["images"]) == 128 and gt["categories"][0]["id"] in ds.category_ids
    assert any(a["iscrowd"] for a in gt["annotations"])  # crowd regions matter for COCO evaluation


def read(path: Path):
    return build_dataset(load_dataset_spec(path), "train")


def test_three_formats_give_the_same_tensors(tmp_path):
    datasets = [
        read(write_coco(tmp_path / "coco")),
        read(write_voc(tmp_path / "voc")),
        read(write_yolo(tmp_path / "yolo")),
    ]
    for ds in datasets:
        assert ds.names == NAMES and len(ds) == len(ITEMS)
        assert not [i for i in ds.issues if i.severity == "error"]
    by_name = [{r.path.name: i for i, r in enumerate(ds.records)} for ds in datasets]
    for item in ITEMS:
        loaded = [ds.load(names[item.file_name]) for ds, names in zip(datasets, by_name)]
        for sample in loaded:
            np.testing.assert_allclose(
                sample.boxes_xyxy, np.asarray(item.boxes_xyxy, np.float32).reshape(-1, 4), atol=1e-4
            )
            np.testing.assert_array_equal(sample.labels, np.asarray(item.labels, np.int64))
            np.testing.assert_array_equal(sample.image, loaded[0].image)
    assert datasets[0].category_ids == (3, 7, 11) and datasets[1].category_ids == (0, 1, 2)
    coco_gt = datasets[1].to_coco()
    assert len(coco_gt["annotations"]) == sum(len(i.labels) for i in ITEMS)


def test_voc_difficult_option_and_names_from_files(tmp_path):
    path = write_voc(tmp_path, with_names=False, difficult=(1,))
    kept = read(path)
    assert kept.names == ("bird", "cat", "dog")  # sorted names found in the XML files
    assert kept.records[0].extra["difficult"].tolist() == [False, True]
    spec = load_dataset_spec(path)
    data = {"format": "voc", "train": {"dir": "VOC2007", "set": "trainval"}, "keep_difficult": False}
    dropped = build_dataset(parse_dataset_spec(data, base=tmp_path, source=spec.source), "train")
    assert len(dropped.records[0].labels) == 1


def test_yolo_txt_list_and_missing_label_is_negative(tmp_path):
    write_yolo(tmp_path)
    (tmp_path / "train.txt").write_text("./images/train/a.png\nimages/train/c.png\n")
    ds = read(write_yaml(tmp_path / "list.yaml", {"path": ".", "train": "train.txt", "names": list(NAMES)}))
    assert [len(r.labels) for r in ds.records] == [2, 0]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"format": "kitti", "train": "x"}, "format 'kitti'"),
        ({"format": "coco", "train": {"images": "i"}}, "missing key(s) ['annotations']"),
        ({"train": "images", "names": ["a", "a"]}, "duplicate class names"),
        ({"train": "images"}, "'names' is required"),
        ({"train": "images", "names": {0: "a", 2: "b"}}, "without gaps"),
        ({"train": "images", "names": ["a"], "trian": 1}, "unknown key(s) ['trian']"),
    ],
)
def test_spec_errors_name_the_file_and_key(tmp_path, data, message):
    path = write_yaml(tmp_path / "bad.yaml", data)
    with pytest.raises(DatasetSpecError) as info:
        load_dataset_spec(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_split_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_dataset_spec(tmp_path / "nope.yaml")
    spec = load_dataset_spec(write_yolo(tmp_path))
    with pytest.raises(DatasetSpecError, match="no 'test' split"):
        build_dataset(spec, "test")


def test_to_coco_of_every_format_scores_perfect_detections_as_ap_1(tmp_path):
    from yoloxdet.engine.evaluator import evaluate_coco, to_coco_results

    for fmt, writer in (("coco", write_coco), ("voc", write_voc), ("yolo", write_yolo)):
        ds = read(writer(tmp_path / fmt))
        results = []
        for rec in ds.records:
            results += to_coco_results(
                rec.image_id, rec.boxes_xyxy, np.ones(len(rec.labels)), rec.labels, ds.category_ids
            )
        metrics = evaluate_coco(ds.to_coco(), results)
        assert metrics.stats[1] == pytest.approx(1.0), fmt  # AP50
        assert metrics.stats[0] == pytest.approx(1.0), fmt  # AP50:95
