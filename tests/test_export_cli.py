"""``yoloxdet export`` end to end on the official YOLOX-Nano: the exported file predicts like the original,
through ``yoloxdet predict`` with nothing but the file (model, classes, size and layout come from its
metadata)."""

from __future__ import annotations

import json

import pytest

from yoloxdet.cli import main


def _predict(weights, images, output, *extra) -> list[dict]:
    argv = [
        "predict",
        str(weights),
        *map(str, images),
        "-o",
        str(output),
        "--no-save",
        "--no-progress",
        *extra,
    ]
    assert main(argv) == 0
    report = json.loads((output / "detections.json").read_text())
    assert report["model"] == "yolox-nano" and len(report["class_names"]) == 80
    return report["images"]


def _assert_same_predictions(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert len(a["detections"]) == len(b["detections"]) > 0
        for da, db in zip(a["detections"], b["detections"]):
            assert da["class_name"] == db["class_name"]
            assert da["box_xyxy"] == pytest.approx(db["box_xyxy"], abs=0.05)
            assert da["score"] == pytest.approx(db["score"], abs=1e-4)


def _official(coco128, nano_onnx, tmp_path):
    images = sorted((coco128 / "images").glob("*.jpg"))[:3]
    return images, _predict(nano_onnx, images, tmp_path / "official", "--model", "yolox-nano")


@pytest.mark.slow
def test_torchscript_export_of_official_nano_predicts_the_same(coco128, nano_onnx, tmp_path, capsys):
    images, expected = _official(coco128, nano_onnx, tmp_path)
    out = tmp_path / "nano.torchscript"
    assert (
        main(["export", str(nano_onnx), "--model", "yolox-nano", "--format", "torchscript", "-o", str(out)])
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    _assert_same_predictions(_predict(out, images, tmp_path / "ts"), expected)


@pytest.mark.slow
def test_onnx_export_of_official_nano_predicts_the_same(coco128, nano_onnx, tmp_path):
    images, expected = _official(coco128, nano_onnx, tmp_path)
    out = tmp_path / "nano.onnx"
    assert main(["export", str(nano_onnx), "--model", "yolox-nano", "--static-size", "-o", str(out)]) == 0
    _assert_same_predictions(_predict(out, images, tmp_path / "onnx"), expected)


def test_export_reports_bad_arguments_on_one_line(nano_onnx, tmp_path, capsys):
    assert (
        main(["export", str(nano_onnx), "--model", "yolox-nano", "--size", "100", "-o", str(tmp_path / "x")])
        == 2
    )
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.pth"), "--model", "yolox-nano"]) == 2
    assert "missing.pth" in capsys.readouterr().err
