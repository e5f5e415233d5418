"""Bad data: every case has a generated fixture, a message naming the file (and line / annotation id), and the
good samples around it survive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_helpers import (
    ITEMS,
    NAMES,
    write_coco,
    write_exif_rotated,
    write_truncated_jpeg,
    write_voc,
    write_yolo,
)

from yoloxdet.cli import main
from yoloxdet.data.checks import check_split, checked_dataset
from yoloxdet.data.spec import load_dataset_spec

GOOD_BOXES = sum(len(i.labels) for i in ITEMS)


def run_checks(yaml_path: Path):
    dataset, report = check_split(load_dataset_spec(yaml_path), "train", workers=1)
    return dataset, report, [str(i) for i in report.issues]


def find(messages: list[str], *parts: str) -> str:
    hits = [m for m in messages if all(p in m for p in parts)]
    assert hits, f"no message with {parts} in {messages}"
    return hits[0]


def total_boxes(dataset) -> int:
    return sum(len(r.labels) for r in dataset.records)


@pytest.mark.parametrize(
    "row, message",
    [
        ("0 0.5 0.5 0.2", "5 columns"),
        ("zero 0.5 0.5 0.2 0.2", "non-numeric"),
        ("7 0.5 0.5 0.2 0.2", "class id 7 out of range 0..2"),
        ("1.5 0.5 0.5 0.2 0.2", "not an integer"),
        ("1 nan 0.5 0.2 0.2", "NaN"),
        ("1 0.5 0.5 0 0.2", "zero or negative size"),
        ("1 0.5 0.5 -0.1 0.2", "zero or negative size"),
    ],
)
def test_yolo_bad_rows_name_file_and_line(tmp_path, row, message):
    yaml_path = write_yolo(tmp_path)
    label = tmp_path / "labels" / "train" / "a.txt"
    label.write_text(label.read_text() + row + "\n")
    dataset, _, messages = run_checks(yaml_path)
    assert f"{label}:line 3" in find(messages, message)
    assert total_boxes(dataset) == GOOD_BOXES  # the two good rows of a.txt are kept


def test_yolo_box_outside_image_is_clipped_with_a_warning(tmp_path):
    yaml_path = write_yolo(tmp_path)
    label = tmp_path / "labels" / "train" / "b.txt"
    label.write_text("1 0.9 0.5 0.4 0.2\n")
    dataset, _, messages = run_checks(yaml_path)
    assert f"{label}:line 1" in find(messages, "warning", "outside", "clipped")
    rec = next(r for r in dataset.records if r.path.name == "b.png")
    assert rec.boxes_xyxy[0, 2] == rec.width


def test_empty_label_file_is_a_negative_with_a_warning(tmp_path):
    yaml_path = write_yolo(tmp_path)
    label = tmp_path / "labels" / "train" / "d.txt"
    label.write_text("\n")
    dataset, _, messages = run_checks(yaml_path)
    assert str(label) in find(messages, "empty label file")
    assert len(dataset) == len(ITEMS) and total_boxes(dataset) == GOOD_BOXES - 3


def test_coco_bad_annotations_name_the_annotation_id(tmp_path):
    yaml_path = write_coco(tmp_path)
    ann_file = tmp_path / "annotations" / "instances.json"
    gt = json.loads(ann_file.read_text())
    bad = [
        {"bbox": [1, 1, float("nan"), 3], "category_id": 3},
        {"bbox": [5, 5, 0, 4], "category_id": 3},
        {"bbox": [5, 5, 3, 4], "category_id": 99},
        {"bbox": [50, 40, 30, 20], "category_id": 7},
        {"bbox": [5, 5], "category_id": 3},
    ]
    for k, ann in enumerate(bad):
        gt["annotations"].append({"id": 900 + k, "image_id": 100, "area": 12, "iscrowd": 0, **ann})
    gt["annotations"].append({"id": 950, "image_id": 4242, "bbox": [1, 1, 2, 2], "category_id": 3, "area": 4})
    gt["images"].append({"id": 777, "file_name": "gone.png", "width": 10, "height": 10})
    ann_file.write_text(json.dumps(gt))  # Python writes NaN, as some tools do
    dataset, _, messages = run_checks(yaml_path)
    assert "annotation id 900" in find(messages, "NaN")
    assert "annotation id 901" in find(messages, "zero or negative size")
    assert "annotation id 902" in find(messages, "unknown category id 99")
    assert "annotation id 903" in find(messages, "outside", "clipped")
    assert "annotation id 904" in find(messages, "malformed bbox")
    assert "annotation id 950" in find(messages, "unknown image id 4242")
    assert "gone.png" in find(messages, "image file is missing")
    assert total_boxes(dataset) == GOOD_BOXES + 1  # only the clipped box joins the good ones


def test_voc_unknown_class_and_malformed_xml(tmp_path):
    yaml_path = write_voc(tmp_path)
    xml_dir = tmp_path / "VOC2007" / "Annotations"
    text = (xml_dir / "a.xml").read_text().replace("<name>dog</name>", "<name>zebra</name>")
    (xml_dir / "b.xml").write_text(text.replace("<name>cat</name>", "<name>unicorn</name>"))
    (xml_dir / "d.xml").write_text("<annotation><object>")
    dataset, _, messages = run_checks(yaml_path)
    assert str(xml_dir / "b.xml") + ":object 0" in find(messages, "unknown class name 'unicorn'")
    assert str(xml_dir / "d.xml") in find(messages, "unreadable annotation file")
    assert len(dataset) == len(ITEMS) - 1  # d is skipped, everything else kept


def test_image_problems_corrupt_truncated_exif_duplicate_missing(tmp_path):
    yaml_path = write_yolo(tmp_path)
    images = tmp_path / "images" / "train"
    (images / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    jpg = images / "e.jpg"
    write_truncated_jpeg(jpg, (400, 300))
    write_exif_rotated(images / "f.jpg")
    (images / "g.png").write_bytes((images / "b.png").read_bytes())
    dataset, report, messages = run_checks(yaml_path)
    assert str(images / "a.png") in find(messages, "error")
    assert str(jpg) in find(messages, "truncated")
    assert str(images / "f.jpg") in find(messages, "EXIF orientation 6")
    assert str(images / "g.png") in find(messages, "duplicate of", str(images / "b.png"))
    # the header of e.jpg reads fine, so only decoding finds it; checked_dataset drops report.unreadable
    assert jpg in report.unreadable and jpg in {r.path for r in dataset.records}
    assert len(dataset) == len(ITEMS) + 2  # a.png (unreadable header) is out; b, c, d, e, f, g are in
    (tmp_path / "list.txt").write_text("images/train/b.png\nimages/train/missing.png\n")
    spec_path = tmp_path / "list.yaml"
    spec_path.write_text(f"train: list.txt\nnames: {list(NAMES)}\n")
    _, _, messages = run_checks(spec_path)
    assert "missing.png" in find(messages, "image file is missing")


def test_checked_dataset_caches_by_content_and_drops_unreadable(tmp_path, caplog):
    yaml_path = write_yolo(tmp_path)
    jpg = tmp_path / "images" / "train" / "e.jpg"
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(jpg)
    jpg.write_bytes(jpg.read_bytes()[:300])
    spec = load_dataset_spec(yaml_path)
    cache = tmp_path / "cache"
    first = checked_dataset(spec, "train", cache, workers=1)
    assert jpg not in {r.path for r in first.records} and len(first) == len(ITEMS)
    files = list(cache.glob("check-train-*.json"))
    assert len(files) == 1 and str(jpg) in files[0].read_text()
    again = checked_dataset(spec, "train", cache, workers=1)
    assert [r.path for r in again.records] == [r.path for r in first.records]
    assert len(list(cache.glob("*.json"))) == 1  # served from the cache
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    checked_dataset(spec, "train", cache, workers=1)
    assert len(list(cache.glob("*.json"))) == 2  # a changed label file means a new check


def test_check_data_and_show_aug_commands(tmp_path, capsys):
    yaml_path = write_yolo(tmp_path)
    png = tmp_path / "stats.png"
    assert main(["check-data", str(yaml_path), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "images 4" in out and "negatives (no boxes) 1" in out and png.stat().st_size > 1000
    (tmp_path / "labels" / "train" / "a.txt").write_text("9 0.5 0.5 0.2 0.2\n")
    assert main(["check-data", str(yaml_path), "--png", str(png)]) == 1
    assert "class id 9 out of range" in capsys.readouterr().out
    grid = tmp_path / "aug.png"
    assert (
        main(
            [
                "show-aug",
                str(yaml_path),
                "--model",
                "yolox-nano",
                "--size",
                "64",
                "--num",
                "4",
                "--out",
                str(grid),
            ]
        )
        == 0
    )
    assert Image.open(grid).size == (128, 128)
    assert main(["check-data", str(tmp_path / "absent.yaml")]) == 2


def test_annotated_size_differs_from_the_image(tmp_path):
    yaml_path = write_coco(tmp_path)
    ann_file = tmp_path / "annotations" / "instances.json"
    gt = json.loads(ann_file.read_text())
    gt["images"][1]["width"] = 500
    ann_file.write_text(json.dumps(gt))
    dataset, _, messages = run_checks(yaml_path)
    assert "b.png" in find(messages, "warning", "image is 50x70 but the annotations say 500x70")
    assert total_boxes(dataset) == GOOD_BOXES
