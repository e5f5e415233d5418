"""``yoloxdet assign-viz`` and its drawing helpers: files written, JSON consistent with the assigners,
errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yoloxdet.cli import main
from yoloxdet.commands.assign_viz import parse_boxes
from yoloxdet.experiments.viz_assign import draw_assignment, gt_color, positive_rows, side_by_side
from yoloxdet.structures import Assignment, HeadOutputs


def test_positive_rows_geometry() -> None:
    # Levels 2x2 (stride 8, anchors 0-3) and 1x1 (stride 16, anchor 4); positives at anchors 3 and 4.
    outputs = HeadOutputs(
        torch.zeros(1, 5, 4), torch.zeros(1, 5), torch.zeros(1, 5, 2), (8, 16), ((2, 2), (1, 1))
    )
    fg = torch.tensor([[False, False, False, True, True]])
    assignment = Assignment(
        fg,
        torch.tensor([[-1, -1, -1, 1, 0]]),
        torch.tensor([[0, 0, 0, 0.5, 0.25]]),
        torch.tensor([[0, 0, 0, 2.0, 3.0]]),
    )
    rows = positive_rows(assignment, outputs)
    assert rows == [
        {
            "anchor": 3,
            "gt": 1,
            "stride": 8,
            "cell_xy": [1, 1],
            "center_xy": [12.0, 12.0],
            "cost": 2.0,
            "iou": 0.5,
        },
        {
            "anchor": 4,
            "gt": 0,
            "stride": 16,
            "cell_xy": [0, 0],
            "center_xy": [8.0, 8.0],
            "cost": 3.0,
            "iou": 0.25,
        },
    ]
    panel = draw_assignment(
        np.zeros((16, 16, 3), np.uint8), np.array([[0, 0, 15, 15], [4, 4, 14, 14]]), rows, "t"
    )
    assert panel.shape[1] == 16 and panel.shape[0] > 16
    assert tuple(panel[-16 + 12, 12]) == gt_color(1)  # the stride-8 dot of GT 1 at its anchor centre
    assert side_by_side([panel, panel], gap=4).shape == (panel.shape[0], 36, 3)


def test_parse_boxes_and_errors() -> None:
    boxes, labels = parse_boxes("1,2,30,40,3; 5,5,9,9,0;")
    assert boxes.tolist() == [[1, 2, 30, 40], [5, 5, 9, 9]] and labels.tolist() == [3, 0]
    for bad in ("1,2,3,4", "1,2,a,4,0", "5,5,1,9,0", ""):
        with pytest.raises(ValueError, match="--boxes"):
            parse_boxes(bad)


def test_cli_writes_panels_sheet_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    image_path = tmp_path / "img.png"
    cv2.imwrite(str(image_path), image)
    out = tmp_path / "viz"
    names = ["simota", "ota", "single", "center3x3"]
    argv = [
        "assign-viz",
        "--image",
        str(image_path),
        "--boxes",
        "10,10,90,80,1;100,20,120,50,0",
        "--size",
        "160",
        "--num-classes",
        "3",
        "--assigners",
        ",".join(names),
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    for name in names:
        assert cv2.imread(str(out / f"{name}.png")) is not None
        report = json.loads((out / f"{name}.json").read_text())
        assert report["assigner"] == name and len(report["gts"]) == 2
        # Boxes are letterboxed: ratio 160/150, no offset.
        assert report["gts"][0]["box_xyxy"] == pytest.approx([10 * 16 / 15, 10 * 16 / 15, 96, 80 * 16 / 15])
        assert sum(report["positives_per_gt"]) == len(report["positives"]) > 0
        assert all(np.isfinite(p["cost"]) and p["gt"] in (0, 1) for p in report["positives"])
    single = json.loads((out / "single.json").read_text())
    assert single["positives_per_gt"] == [1, 1]
    sheet = cv2.imread(str(out / "sheet.png"))
    panel = cv2.imread(str(out / "ota.png"))
    assert sheet.shape[1] > 4 * panel.shape[1]
    assert "wrote 4 panels" in capsys.readouterr().out


def test_cli_dataset_sample(tmp_path: Path, coco128: Path) -> None:
    spec = tmp_path / "coco128.yaml"
    spec.write_text(
        f"format: coco\nroot: {coco128}\ntrain: {{images: images, annotations: annotations/instances.json}}\n"
    )
    out = tmp_path / "viz"
    argv = [
        "assign-viz",
        "--data",
        str(spec),
        "--index",
        "1",
        "--size",
        "320",
        "--assigners",
        "center3x3",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads((out / "center3x3.json").read_text())
    assert len(report["gts"]) > 0 and report["image"].endswith(".jpg")


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image_path = tmp_path / "img.png"
    cv2.imwrite(str(image_path), np.zeros((32, 32, 3), np.uint8))
    base = ["assign-viz", "--image", str(image_path), "-o", str(tmp_path / "o"), "--size", "64"]
    assert main([*base, "--boxes", "1,1,5,5,0", "--assigners", "nope"]) == 2
    assert "unknown ['nope']" in capsys.readouterr().err
    assert main([*base, "--boxes", "1,1,5,5,7", "--num-classes", "3"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(base) == 2
    assert "--boxes" in capsys.readouterr().err
    assert main([*base, "--boxes", "1,1,5,5,0", "--weights", str(tmp_path / "missing.pt")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
