"""Importing the official BN-folded yolox_nano.onnx, checked against onnxruntime on real images, and BN
calibration of the import on real images."""

import copy

import numpy as np
import pytest
import torch

from yoloxdet.cli import main
from yoloxdet.commands.import_weights import calibration_batches
from yoloxdet.data.transforms import letterbox, to_chw_float
from yoloxdet.ops.boxes import xyxy_to_cxcywh
from yoloxdet.structures import Targets
from yoloxdet.weights import calibrate_batchnorm, load_model


def _max_running_var(model) -> float:
    """Identity BN of a fresh import has running_var 1 - eps everywhere; calibrated statistics differ."""
    return max(float(m.running_var.max()) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def _official_layout(outputs) -> torch.Tensor:
    """Our head outputs in the layout of the official ONNX output: raw box, sigmoid obj, sigmoid cls."""
    return torch.cat(
        [outputs.box_raw, outputs.obj_logits.sigmoid()[..., None], outputs.cls_logits.sigmoid()], -1
    )


@pytest.fixture(scope="module")
def imported(nano_onnx):
    return load_model(nano_onnx, model_name="yolox-nano")


@pytest.fixture(scope="module")
def test_images(coco128):
    return next(iter(calibration_batches(str(coco128 / "images"), (416, 416), 4, 4, seed=1)))


def test_import_matches_onnxruntime_on_coco_images(nano_onnx, imported, test_images):
    ort = pytest.importorskip("onnxruntime")
    model, info = imported
    assert (info.model_name, info.num_classes, info.input_size) == ("yolox-nano", 80, (416, 416))
    assert info.class_names[:2] == ("person", "bicycle")
    session = ort.InferenceSession(str(nano_onnx), providers=["CPUExecutionProvider"])
    worst = 0.0
    for image in test_images:
        expected = session.run(None, {"images": image[None].numpy()})[0]
        with torch.no_grad():
            ours = _official_layout(model(image[None])).numpy()
        assert ours.shape == expected.shape == (1, 3549, 85)
        worst = max(worst, float(np.abs(ours - expected).max()))
    assert worst < 1e-3, worst  # measured 1.5e-4 (raw box offsets; scores ~1e-5)
    assert float(expected[..., 4].max()) > 0.5  # real detections, not a degenerate comparison


def test_wrong_model_name_is_a_clear_error(nano_onnx):
    with pytest.raises(ValueError, match=r"yolox_nano\.onnx: .*Conv nodes"):
        load_model(nano_onnx, model_name="yolox-tiny")


@pytest.fixture(scope="module")
def calibrated(imported, coco128):
    model = copy.deepcopy(imported[0])
    calibrate_batchnorm(model, calibration_batches(str(coco128 / "images"), (416, 416), 16, 8, seed=0))
    return model


def test_calibration_on_real_images(imported, calibrated, test_images):
    model = imported[0]
    with torch.no_grad():
        reference = _official_layout(model(test_images))
        identity_train = _official_layout(copy.deepcopy(model).train()(test_images))
    model = calibrated
    with torch.no_grad():
        after = _official_layout(model(test_images))
        calibrated_train = _official_layout(copy.deepcopy(model).train()(test_images))
    # eval function unchanged up to float32 rounding (measured: scores 1e-5, raw box offsets 1.1e-4 of |3.6|)
    assert (after[..., 4:] - reference[..., 4:]).abs().max() < 1e-4
    assert (after[..., :4] - reference[..., :4]).abs().max() < 1e-4 * reference[..., :4].abs().max()
    # train-mode BN with identity statistics is far from the detector; calibrated statistics bring it close
    identity_gap = (identity_train - reference).abs().mean()
    calibrated_gap = (calibrated_train - reference).abs().mean()
    assert calibrated_gap < 0.4 * identity_gap, (calibrated_gap, identity_gap)


def test_calibration_is_exact_in_float64(imported, test_images):
    model = copy.deepcopy(imported[0]).double()
    images = test_images[:2].double()
    with torch.no_grad():
        reference = _official_layout(model(images))
    calibrate_batchnorm(model, [images])
    assert _max_running_var(model) > 2  # statistics really changed
    with torch.no_grad():
        assert (_official_layout(model(images)) - reference).abs().max() < 1e-9


def test_import_weights_cli_onnx_with_calibration(
    nano_onnx, coco128, imported, test_images, tmp_path, capsys
):
    out = tmp_path / "yolox_nano.pt"
    argv = [
        "import-weights",
        str(nano_onnx),
        "--model",
        "yolox-nano",
        "-o",
        str(out),
        "--calibrate",
        str(coco128 / "images" / "**" / "*.jpg"),
        "--calibrate-images",
        "4",
        "--batch-size",
        "2",
    ]
    assert main(argv) == 0
    assert "BN calibrated" in capsys.readouterr().out
    model, info = load_model(out)
    assert info == imported[1]
    assert _max_running_var(imported[0]) < 1 < _max_running_var(model)
    with torch.no_grad():
        diff = _official_layout(model(test_images[:1])) - _official_layout(imported[0](test_images[:1]))
    assert diff[..., 4:].abs().max() < 1e-4


def _annotated_batch(coco128, count: int = 8) -> tuple[torch.Tensor, Targets]:
    """The first ``count`` annotated coco128 images letterboxed to 416 with their boxes (the project's
    reader)."""
    from yoloxdet.data.formats import read_coco
    from yoloxdet.data.spec import SplitSource
    from yoloxdet.io import read_image

    source = SplitSource(coco128 / "images", coco128 / "annotations" / "instances.json")
    records = [r for r in read_coco(source).records if len(r.labels)][:count]
    images, box_list = [], []
    for record in records:
        canvas, ratio = letterbox(read_image(record.path), (416, 416))
        images.append(torch.from_numpy(to_chw_float(canvas)))
        box_list.append(xyxy_to_cxcywh(torch.from_numpy(record.boxes_xyxy) * ratio))
    return torch.stack(images), Targets.from_list(box_list, [torch.from_numpy(r.labels) for r in records])


def _loss(model, images: torch.Tensor, targets: Targets, train: bool) -> float:
    from yoloxdet.assign import assign
    from yoloxdet.loss import yolox_loss

    model = copy.deepcopy(model).train(train)  # a train-mode forward moves the running statistics
    with torch.no_grad():
        outputs = model(images)
        return float(yolox_loss(outputs, targets, assign("simota", outputs, targets), use_l1=False)["total"])


def test_calibrated_train_mode_loss_is_close_to_frozen_bn_loss(imported, calibrated, coco128):
    """Fine-tuning starts from train-mode BN: with calibrated statistics its step-0 loss is near the loss of
    the imported detector itself (eval-mode BN); with the identity BN of the raw import it is far off."""
    images, targets = _annotated_batch(coco128)
    frozen = _loss(imported[0], images, targets, train=False)
    identity = _loss(imported[0], images, targets, train=True)
    after = _loss(calibrated, images, targets, train=True)
    # measured on these 8 images: frozen 5.0, identity 16.9, calibrated 6.0
    assert abs(after - frozen) < 0.5 * abs(identity - frozen), (frozen, identity, after)
