"""The Detector API: preprocessing and box mapping (with a backend whose answer is computed from the pixels it
sees), input kinds (paths, BGR arrays, PIL, gray/RGBA/16-bit/EXIF-rotated files), batching, clipping, errors,
and the Detections helpers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from yoloxdet import Detections, Detector
from yoloxdet.io import ImageReadError
from yoloxdet.models.zoo import create_model
from yoloxdet.weights import CheckpointInfo

NAMES = ("bright", "other")
INFO = CheckpointInfo("yolox-nano", 2, NAMES, (416, 416))


class BrightSpotBackend:
    """A stand-in network that 'detects' the bright region of each letterboxed input.

    Per image it outputs two anchors in the official decoded layout [cx, cy, w, h, obj, cls...]: the bounding
    box of pixels >= 128 in all channels (class 0, obj 0.9) and a fixed low-score box (class 1, score
    0.1 * 0.5). The boxes Detector returns therefore show exactly where the bright pixels were in the
    original image.
    """

    def __init__(self, extra_box_cxcywh=(100.0, 100.0, 20.0, 20.0)):
        self.extra = torch.tensor(extra_box_cxcywh)
        self.batch_sizes = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 416, 416)
        self.batch_sizes.append(len(images))
        out = torch.zeros(len(images), 2, 7)
        for i, image in enumerate(images):
            ys, xs = torch.nonzero((image >= 128).all(dim=0), as_tuple=True)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            out[i, 0] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.9, 1.0, 0.0])
            out[i, 1, :4] = self.extra
            out[i, 1, 4:] = torch.tensor([0.1, 0.0, 0.5])
        return out


def _bright_block(height=104, width=208, box=(30, 10, 90, 40)) -> np.ndarray:
    """Black BGR image with a white block at xyxy ``box``; with 208 px width the letterbox ratio is exactly
    2."""
    image = np.zeros((height, width, 3), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return image


def test_boxes_are_mapped_back_to_original_pixels():
    detector = Detector(BrightSpotBackend(), INFO, conf_threshold=0.25)
    [dets] = detector.predict(_bright_block())
    assert isinstance(dets, Detections) and len(dets) == 1  # the 0.05 box is below the threshold
    # the letterbox ratio is 2 and the padding is at the bottom/right, so original = letterbox / 2
    np.testing.assert_allclose(dets.xyxy[0], [30, 10, 90, 40], atol=0.5)
    assert dets.scores[0] == pytest.approx(0.9) and dets.class_ids.tolist() == [0]
    assert dets.labels == ["bright"] and dets.orig_shape == (104, 208) and dets.names == NAMES

    low = Detector(BrightSpotBackend(), INFO, conf_threshold=0.01).predict(_bright_block())[0]
    assert sorted(low.class_ids.tolist()) == [0, 1]
    np.testing.assert_allclose(
        low.xyxy[low.class_ids == 1][0], [45, 45, 55, 55], atol=1e-4
    )  # (100 +- 10) / 2


def test_clipping_is_for_display_only():
    backend = BrightSpotBackend(
        extra_box_cxcywh=(410.0, 20.0, 40.0, 20.0)
    )  # extends past the 208 px-wide image
    detector = Detector(backend, INFO, conf_threshold=0.01)
    clipped = detector.predict(_bright_block())[0]
    unclipped = detector.predict(_bright_block(), clip=False)[0]
    np.testing.assert_allclose(unclipped.xyxy[unclipped.class_ids == 1][0], [195, 5, 215, 15], atol=1e-4)
    np.testing.assert_allclose(clipped.xyxy[clipped.class_ids == 1][0], [195, 5, 208, 15], atol=1e-4)


def _save_variants(tmp_path) -> dict[str, object]:
    """The same scene as a gray PNG, an RGBA PNG, a 16-bit PNG, a BGR array and a PIL RGB image."""
    bgr = _bright_block()
    gray = bgr[:, :, 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([bgr[:, :, ::-1], np.full(gray.shape, 128, np.uint8)]), mode="RGBA").save(
        tmp_path / "rgba.png"
    )
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    return {
        "gray": tmp_path / "gray.png",
        "rgba": str(tmp_path / "rgba.png"),
        "deep": tmp_path / "deep.png",
        "array": bgr,
        "pil": Image.fromarray(bgr[:, :, ::-1]),
    }


def test_every_input_kind_gives_the_same_boxes_in_one_batch(tmp_path):
    sources = _save_variants(tmp_path)
    backend = BrightSpotBackend()
    detector = Detector(backend, INFO, batch_size=3)
    results = detector.predict(list(sources.values()))
    assert backend.batch_sizes == [3, 2]
    for name, dets in zip(sources, results):
        assert dets.orig_shape == (104, 208), name
        np.testing.assert_allclose(dets.xyxy, [[30, 10, 90, 40]], atol=0.5, err_msg=name)
    assert results[0].image_path == sources["gray"] and results[3].image_path is None


def test_exif_rotated_image_gives_boxes_in_the_rotated_frame(tmp_path):
    stored = _bright_block(height=104, width=208, box=(30, 10, 90, 40))
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    [dets] = Detector(BrightSpotBackend(), INFO).predict(tmp_path / "rotated.jpg")
    assert dets.orig_shape == (208, 104)
    # clockwise: stored (x, y) -> displayed (H - 1 - y, x), so x in [104-40, 104-10), y in [30, 90)
    np.testing.assert_allclose(dets.xyxy[0], [64, 30, 94, 90], atol=1.5)


def test_unreadable_input_raises_an_error_naming_it(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=r"bad\.jpg"):
        Detector(BrightSpotBackend(), INFO).predict([_bright_block(), bad])


def test_input_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        Detector(BrightSpotBackend(), INFO, input_size=(400, 416))


def test_real_model_batched_equals_one_by_one_and_pil_equals_bgr():
    torch.manual_seed(0)
    model = create_model("yolox-nano", num_classes=2)
    with torch.no_grad():  # unbiased predictors so random weights give scores around 0.25
        for conv in [*model.head.obj_preds, *model.head.cls_preds]:
            conv.bias.zero_()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((120, 160), (200, 90), (64, 64))]
    batched = Detector(model, INFO, conf_threshold=0.2, input_size=(224, 224), batch_size=3).predict(images)
    single = Detector(model, INFO, conf_threshold=0.2, input_size=(224, 224), batch_size=1)
    assert sum(len(d) for d in batched) > 0, "the test must produce detections"
    for image, dets in zip(images, batched):
        [alone] = single.predict(image)
        [from_pil] = single.predict(Image.fromarray(image[:, :, ::-1]))
        np.testing.assert_allclose(dets.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(dets.scores, alone.scores, atol=1e-5)
        np.testing.assert_array_equal(from_pil.xyxy, alone.xyxy)
        assert (dets.xyxy[:, 2] <= image.shape[1]).all() and (dets.xyxy[:, 3] <= image.shape[0]).all()


def test_detections_json_draw_and_save(tmp_path):
    [dets] = Detector(BrightSpotBackend(), INFO, conf_threshold=0.01).predict(
        _bright_block(), keep_images=True
    )
    data = json.loads(dets.to_json())
    assert data["height"] == 104 and data["width"] == 208
    top = max(data["detections"], key=lambda d: d["score"])
    assert top["class_name"] == "bright" and top["box_xyxy"] == pytest.approx([30, 10, 90, 40], abs=0.5)
    drawn = dets.draw()
    assert drawn.shape == (104, 208, 3)
    assert (drawn != _bright_block()).any(axis=2).sum() > 100  # something was drawn
    path = dets.save(tmp_path / "out" / "pred.png")
    np.testing.assert_array_equal(cv2.imread(str(path)), drawn)
    with pytest.raises(ValueError, match="no image"):
        Detector(BrightSpotBackend(), INFO).predict(_bright_block())[0].draw()
