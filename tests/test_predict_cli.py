"""``yoloxdet predict`` with the official YOLOX-Nano weights on an image, a folder, a glob and a generated
video: annotated outputs, the detections JSON, and one-line errors for unreadable inputs that do not stop the
others."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from yoloxdet.cli import main

# coco128 images with several obvious objects (people, vehicles, animals)
IMAGES = ("000000000009.jpg", "000000000025.jpg", "000000000030.jpg")


@pytest.fixture
def image_dir(coco128, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in IMAGES:
        shutil.copy(coco128 / "images" / name, folder / name)
    return folder


def _predict(nano_onnx, *args) -> int:
    return main(["predict", str(nano_onnx), "--model", "yolox-nano", "--no-progress", *map(str, args)])


def _report(output) -> dict:
    return json.loads((output / "detections.json").read_text())


def test_predict_one_image_writes_annotated_copy_and_json(nano_onnx, image_dir, tmp_path, capsys):
    output = tmp_path / "out"
    assert _predict(nano_onnx, image_dir / IMAGES[0], "-o", output) == 0
    report = _report(output)
    assert report["model"] == "yolox-nano" and report["input_size"] == [416, 416] and report["errors"] == []
    [entry] = report["images"]
    original = cv2.imread(str(image_dir / IMAGES[0]))
    assert entry["image"].endswith(IMAGES[0]) and (entry["height"], entry["width"]) == original.shape[:2]
    assert entry["detections"], "the official nano finds objects in this image"
    for det in entry["detections"]:
        assert det["score"] >= 0.25 and det["class_name"] == report["class_names"][det["class_id"]]
        x1, y1, x2, y2 = det["box_xyxy"]
        assert 0 <= x1 < x2 <= entry["width"] and 0 <= y1 < y2 <= entry["height"]
    annotated = cv2.imread(str(output / IMAGES[0]))
    assert annotated.shape == original.shape and np.abs(annotated.astype(int) - original).max() > 100
    assert "detections" in capsys.readouterr().out


def test_predict_no_fuse_and_compile_find_the_same_objects_as_the_default(nano_onnx, image_dir, tmp_path):
    found = {}
    for flags in ((), ("--no-fuse",), ("--compile",)):
        output = tmp_path / "_".join(flags or ("default",))
        assert _predict(nano_onnx, image_dir / IMAGES[1], "--no-save", "-o", output, *flags) == 0
        [entry] = _report(output)["images"]
        found[flags] = entry["detections"]
    default = found[()]
    assert default
    for flags, detections in found.items():
        assert [d["class_id"] for d in detections] == [d["class_id"] for d in default], flags
        for got, want in zip(detections, default):
            assert got["score"] == pytest.approx(want["score"], abs=1e-3), flags
            assert got["box_xyxy"] == pytest.approx(want["box_xyxy"], abs=0.05), flags


def test_predict_folder_and_glob_with_an_unreadable_file(nano_onnx, image_dir, tmp_path, capsys):
    (image_dir / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    output = tmp_path / "folder"
    assert _predict(nano_onnx, image_dir, "-o", output, "--conf", "0.3") == 1  # 1: some input failed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.jpg" in err[0]
    report = _report(output)
    assert [e["image"].rsplit("/", 1)[-1] for e in report["images"]] == sorted(IMAGES)
    assert all(d["score"] >= 0.3 for e in report["images"] for d in e["detections"])
    assert len(report["errors"]) == 1 and sorted(p.name for p in output.glob("*.jpg")) == sorted(IMAGES)

    output = tmp_path / "glob"
    assert _predict(nano_onnx, image_dir / "*0.jpg", "-o", output, "--no-save") == 0
    report = _report(output)
    assert [e["image"].rsplit("/", 1)[-1] for e in report["images"]] == ["000000000030.jpg"]
    assert not list(output.glob("*.jpg"))


def test_predict_video_writes_annotated_video_and_per_frame_json(nano_onnx, coco128, tmp_path):
    frame = cv2.resize(cv2.imread(str(coco128 / "images" / IMAGES[1])), (320, 240))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for shift in range(4):
        writer.write(np.roll(frame, 4 * shift, axis=1))
    writer.release()

    output = tmp_path / "out"
    assert _predict(nano_onnx, video, "-o", output, "--batch", "3") == 0
    [entry] = _report(output)["videos"]
    assert entry["video"] == str(video) and entry["fps"] == pytest.approx(10)
    assert [f["frame"] for f in entry["frames"]] == [0, 1, 2, 3]
    assert all(f["detections"] and (f["height"], f["width"]) == (240, 320) for f in entry["frames"])
    capture = cv2.VideoCapture(str(output / "clip.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 4
    assert not list(output.glob(".*")), "no temporary files left"


def test_predict_missing_source_is_a_one_line_error(nano_onnx, tmp_path, capsys):
    assert _predict(nano_onnx, tmp_path / "nothing.jpg", "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert "nothing.jpg" in err and "\n" not in err
