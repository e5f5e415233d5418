"""Test-time flips: mirrored views' boxes map back exactly (a square finder stands in for the network, so
every box is known), the real Nano's TTA is mirror-symmetric, and ``val --tta`` evaluates with it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from test_tiling import SquareFinder, draw_squares, sorted_boxes

from yoloxdet.cli import main
from yoloxdet.config import TTA_MODES
from yoloxdet.inference.api import Detector
from yoloxdet.inference.tta import TTA_VIEWS, FlipTTABackend
from yoloxdet.weights import CheckpointInfo

# off-centre, so a box not mapped back (or mapped back on the wrong axis) lands somewhere else
SQUARES = [(5, 9, 25, 21), (70, 30, 101, 50), (40, 95, 60, 127)]


def test_the_config_choices_are_the_views():
    assert tuple(TTA_VIEWS) == TTA_MODES


@pytest.mark.parametrize("mode", ["hflip", "flips"])
def test_every_view_maps_its_boxes_back_onto_the_plain_image(mode):
    image = torch.from_numpy(draw_squares(128, 128, SQUARES)).permute(2, 0, 1).float()[None]
    decoded = FlipTTABackend(SquareFinder(), mode)(image)
    views = decoded[0].reshape(1 + len(TTA_VIEWS[mode]), len(SQUARES), 6)
    plain = views[0]
    expected = torch.tensor([[(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0] for x0, y0, x1, y1 in SQUARES])
    assert torch.equal(plain[:, :4][plain[:, 0].argsort()], expected[expected[:, 0].argsort()])
    for view in views[1:]:
        assert torch.equal(view[view[:, 0].argsort()], plain[plain[:, 0].argsort()])


def test_a_detector_with_flips_reports_each_object_once_through_the_letterbox():
    """A 128 x 100 image (W x H) in a 128 input: padded at the bottom, so the upside-down views see the image
    shifted down; the boxes still come back onto the original pixels, and NMS merges the views' copies."""
    squares = [(5, 9, 25, 21), (60, 30, 91, 50), (40, 70, 60, 88)]
    info = CheckpointInfo("square-finder", 1, ("square",), (128, 128))
    [dets] = Detector(SquareFinder(), info, tta="flips").predict(draw_squares(100, 128, squares))
    np.testing.assert_allclose(sorted_boxes(dets.xyxy), sorted_boxes(np.array(squares, np.float32)))


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match=r"unknown test-time augmentation 'rot90'.*hflip"):
        FlipTTABackend(SquareFinder(), "rot90")


def test_nano_with_hflip_sees_a_mirrored_image_as_the_mirror_of_its_detections(coco128, nano_onnx):
    """TTA over {image, mirror} is symmetric: the detections of the mirrored image are the mirror of the
    image's (an input of the model's size, so no padding breaks the symmetry). One pass alone is not."""
    image = cv2.resize(cv2.imread(str(coco128 / "images" / "000000000009.jpg")), (416, 416))
    mirrored = np.ascontiguousarray(image[:, ::-1])

    def boxes_and_scores(detector: Detector, picture: np.ndarray, flip: bool) -> np.ndarray:
        [dets] = detector.predict(picture)
        xyxy = dets.xyxy.copy()
        if flip:
            xyxy[:, [0, 2]] = 416 - xyxy[:, [2, 0]]
        rows = np.concatenate([xyxy, dets.scores[:, None], dets.class_ids[:, None]], axis=1)
        return rows[np.lexsort((rows[:, 1], rows[:, 0]))]

    tta = Detector.from_checkpoint(nano_onnx, model_name="yolox-nano", tta="hflip")
    assert tta.tta == "hflip"
    found = boxes_and_scores(tta, image, flip=False)
    assert len(found) >= 3
    np.testing.assert_allclose(boxes_and_scores(tta, mirrored, flip=True), found, atol=1e-2)
    plain = Detector.from_checkpoint(nano_onnx, model_name="yolox-nano")
    one_pass = boxes_and_scores(plain, image, flip=False)
    assert one_pass.shape != found.shape or not np.allclose(one_pass, found, atol=1e-3)


def test_val_with_tta_records_it_and_scores_differently(coco128, nano_onnx, tmp_path):
    gt = json.loads((coco128 / "annotations" / "instances.json").read_text())
    images = gt["images"][:12]
    keep = {info["id"] for info in images}
    subset = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
    (tmp_path / "gt.json").write_text(json.dumps(subset))
    argv = ["val", str(nano_onnx), "--model", "yolox-nano", "--images", str(coco128 / "images")]
    argv += ["--annotations", str(tmp_path / "gt.json"), "--no-progress", "--workers", "0"]
    assert main([*argv, "-o", str(tmp_path / "plain.json")]) == 0
    assert main([*argv, "-o", str(tmp_path / "tta.json"), "--tta", "hflip"]) == 0
    plain, tta = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("plain", "tta"))
    assert (plain["tta"], tta["tta"]) == ("none", "hflip")
    assert tta["num_detections"] != plain["num_detections"]
    assert abs(tta["AP"] - plain["AP"]) < 0.1 and tta["AP"] > 0.2  # a change, not a breakage
