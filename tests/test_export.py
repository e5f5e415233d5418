"""ONNX / TorchScript export: parity with PyTorch (dynamic batch and size), metadata round trip, runtime
backends, official raw-layout files on real images, and clear errors for bad files.

One dynamic ONNX export of YOLOX-Nano is shared by the module (the dynamo exporter needs ~20-60 s on 2 cores).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from oracle.peer import randomize_

from yoloxdet.export import (
    ExportMetadata,
    export_onnx,
    export_torchscript,
    nms_detections,
    read_onnx_metadata,
)
from yoloxdet.inference.backends import OnnxBackend, TorchScriptBackend, load_exported
from yoloxdet.inference.layouts import detections_to_decoded
from yoloxdet.models.fuse import fuse_model
from yoloxdet.models.zoo import create_model
from yoloxdet.ops.decode import decode
from yoloxdet.ops.nms import postprocess

NAMES = tuple(f"class{i}" for i in range(80))
CONF = 0.2  # calibrated random weights score about 0.1-0.35
META = ExportMetadata("yolox-nano", NAMES, (416, 416), yoloxdet_version="test")


def random_model(name: str, seed: int = 5) -> torch.nn.Module:
    """Random weights with every BN's statistics set from its own input on random images (one eval pass), so
    activations keep a sane scale in deep models (uncalibrated random BNs overflow exp(wh) to inf in
    l/x/darknet53) while every weight still matters."""
    model = randomize_(create_model(name), seed=seed).eval()

    def calibrate(bn: torch.nn.Module, inputs: tuple[torch.Tensor]) -> None:
        bn.running_mean.copy_(inputs[0].mean(dim=(0, 2, 3)))
        # a floor on the variance: nearly constant channels would otherwise amplify image-to-image noise
        bn.running_var.copy_(inputs[0].var(dim=(0, 2, 3)).clamp(min=1.0))

    hooks = [
        m.register_forward_pre_hook(calibrate) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
    ]
    with torch.no_grad():
        model(_images(2, 128, 128, seed=seed + 1))
    for hook in hooks:
        hook.remove()
    return model


@pytest.fixture(scope="module")
def nano() -> torch.nn.Module:
    return random_model("yolox-nano")


@pytest.fixture(scope="module")
def nano_onnx_export(nano, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "nano.onnx"
    export_onnx(fuse_model(nano), path, META)
    return path


def _images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 255


def assert_same_rows(got: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Same rows up to order (random weights saturate many scores to equal values, so NMS order may
    differ)."""
    assert got.shape == expected.shape
    if len(got):
        distance = (got[:, None, :] - expected[None, :, :]).abs().amax(dim=-1)  # [N, N]
        assert distance.amin(dim=1).max() <= atol and distance.amin(dim=0).max() <= atol


def assert_same_detections(got: torch.Tensor, expected: torch.Tensor) -> None:
    """After score filter + NMS the kept boxes, scores and classes agree."""
    for a, b in zip(postprocess(got, CONF, 0.45), postprocess(expected, CONF, 0.45)):
        rows_a = torch.cat([a.boxes_xyxy, a.scores[:, None] * 1000, a.class_ids[:, None] * 1000.0], dim=1)
        rows_b = torch.cat([b.boxes_xyxy, b.scores[:, None] * 1000, b.class_ids[:, None] * 1000.0], dim=1)
        assert_same_rows(rows_a, rows_b, atol=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [(416, 416), (320, 480)])
def test_onnx_matches_pytorch_at_any_batch_and_size(nano, nano_onnx_export, batch, size):
    backend = OnnxBackend(nano_onnx_export, threads=1)
    images = _images(batch, *size, seed=batch)
    with torch.no_grad():
        expected = decode(nano(images))
    got = backend(images)
    assert (
        got.shape == expected.shape == (batch, sum((size[0] // s) * (size[1] // s) for s in (8, 16, 32)), 85)
    )
    assert (got - expected).abs().max() < 1e-4 * max(1.0, float(expected.abs().max()) / 100)
    assert (got[..., 4:] - expected[..., 4:]).abs().max() < 1e-4  # scores: absolute
    assert_same_detections(got, expected)


@pytest.mark.slow
def test_onnx_file_describes_itself(nano_onnx_export):
    import onnx

    proto = onnx.load(str(nano_onnx_export))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["model_name"] == "yolox-nano"
    assert json.loads(props["class_names"]) == list(NAMES)
    assert json.loads(props["input_size"]) == [416, 416]
    assert json.loads(props["preprocessing"])["color"] == "BGR"
    assert json.loads(props["preprocessing"])["pad_value"] == 114
    assert props["output_layout"] == "decoded"
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert read_onnx_metadata(nano_onnx_export) == META


@pytest.mark.slow
def test_detector_from_exported_onnx_equals_pytorch_detector(nano, nano_onnx_export, coco128):
    from yoloxdet import Detector

    images = sorted((coco128 / "images").rglob("*.jpg"))[:3]
    onnx_detector = Detector.from_checkpoint(nano_onnx_export, conf_threshold=CONF)
    assert isinstance(onnx_detector.backend, OnnxBackend)
    assert onnx_detector.input_size == (416, 416) and onnx_detector.names == NAMES
    torch_detector = Detector(nano, onnx_detector.info, conf_threshold=CONF)
    for a, b in zip(onnx_detector.predict(images), torch_detector.predict(images)):
        rows_a = np.concatenate([a.xyxy, a.class_ids[:, None] * 1000.0], axis=1)
        rows_b = np.concatenate([b.xyxy, b.class_ids[:, None] * 1000.0], axis=1)
        assert_same_rows(torch.from_numpy(rows_a), torch.from_numpy(rows_b), atol=1e-2)


def test_torchscript_matches_eager_for_both_layouts(nano, tmp_path):
    images = _images(2, 224, 160)
    with torch.no_grad():
        expected = decode(nano(images))
    for layout in ("decoded", "raw"):
        meta = dataclasses.replace(META, output_layout=layout)
        path = export_torchscript(nano, tmp_path / f"{layout}.torchscript", meta)
        backend, info = load_exported(path)
        assert isinstance(backend, TorchScriptBackend) and info.class_names == NAMES
        got = backend(images)  # raw layout is decoded by the backend from the metadata's strides
        assert (got - expected).abs().max() < 1e-4 * max(1.0, float(expected.abs().max()) / 100)
        assert_same_detections(got, expected)


def test_official_raw_layout_onnx_detects_coco_objects(nano_onnx, coco128):
    """The official export (raw layout, fixed batch 1 and 416x416) through OnnxBackend + Detector finds the
    annotated objects: checks raw-layout decoding, batching by chunks and the preprocessing contract."""
    from torchvision.ops import box_iou

    from yoloxdet import Detector

    ann = json.loads((coco128 / "annotations" / "instances.json").read_text())
    category_ids = sorted(c["id"] for c in ann["categories"])
    meta = ExportMetadata("yolox-nano", NAMES, (416, 416), output_layout="raw")
    backend = OnnxBackend(nano_onnx, meta)
    assert backend.fixed_batch == 1
    detector = Detector(backend, meta.checkpoint_info(), conf_threshold=0.3)
    images = {img["id"]: img["file_name"] for img in ann["images"]}
    chosen = sorted(images)[:4]
    paths = [next((coco128 / "images").rglob(images[i])) for i in chosen]
    matched = 0
    for image_id, dets in zip(chosen, detector.predict(paths)):
        gts = [a for a in ann["annotations"] if a["image_id"] == image_id and not a.get("iscrowd")]
        if not gts or not len(dets.xyxy):
            continue
        gt_boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in gts)])
        gt_classes = torch.tensor([category_ids.index(a["category_id"]) for a in gts])
        iou = box_iou(torch.from_numpy(dets.xyxy), gt_boxes)
        same_class = torch.from_numpy(dets.class_ids)[:, None] == gt_classes[None, :]
        matched += int(((iou > 0.5) & same_class).any(dim=1).sum())
    assert matched >= 3


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, nano_onnx):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"junk\.onnx"):
        OnnxBackend(junk)
    with pytest.raises(ValueError, match=r"junk\.onnx"):
        read_onnx_metadata(junk)
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        OnnxBackend(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="no yoloxdet metadata"):
        OnnxBackend(nano_onnx)
    assert load_exported(nano_onnx) is None  # official files go to the weights importer instead
    bad_ts = tmp_path / "junk.torchscript"
    bad_ts.write_bytes(b"nope")
    with pytest.raises(ValueError, match=r"junk\.torchscript"):
        TorchScriptBackend(bad_ts)
    props = META.to_props()
    del props["class_names"]
    with pytest.raises(ValueError, match=r"m\.onnx.*class_names"):
        ExportMetadata.from_props(props, "m.onnx")


def _postprocess_rows(decoded: torch.Tensor, conf: float, iou: float) -> torch.Tensor:
    """[N, 7] (image, x1, y1, x2, y2, score, class) from the reference ``postprocess``."""
    rows = []
    for i, d in enumerate(postprocess(decoded, conf, iou)):
        image = torch.full((len(d.scores), 1), float(i))
        rows.append(torch.cat([image, d.boxes_xyxy, d.scores[:, None], d.class_ids[:, None].float()], dim=1))
    return torch.cat(rows)


def test_nms_in_graph_equals_postprocess_and_round_trips_through_the_decoded_layout():
    gen = torch.Generator().manual_seed(4)
    decoded = torch.rand(3, 200, 5 + 4, generator=gen)
    decoded[..., :2] *= 300  # centres
    decoded[..., 2:4] = decoded[..., 2:4] * 80 + 5  # sizes: plenty of overlaps
    expected = _postprocess_rows(decoded, 0.2, 0.45)
    got = nms_detections(decoded, 0.2, 0.45)
    assert_same_rows(got, expected, atol=1e-4)
    repacked = detections_to_decoded(got, 3, 4)
    assert_same_rows(_postprocess_rows(repacked, 0.2, 0.45), expected, atol=1e-4)
    nothing = nms_detections(decoded, 2.0, 0.45)  # no score passes: empty, not an error
    assert nothing.shape == (0, 7) and detections_to_decoded(nothing, 3, 4).shape == (3, 0, 9)


def test_torchscript_with_nms_inside_serves_the_detector(nano, tmp_path, coco128):
    from yoloxdet import Detector

    meta = dataclasses.replace(META, output_layout="nms", conf_threshold=CONF, nms_iou_threshold=0.45)
    path = export_torchscript(nano, tmp_path / "nms.torchscript", meta)
    images = sorted((coco128 / "images").glob("*.jpg"))[:2]
    exported = Detector.from_checkpoint(path, conf_threshold=CONF, nms_iou_threshold=0.45)
    reference = Detector(nano, exported.info, conf_threshold=CONF, nms_iou_threshold=0.45)
    for a, b in zip(exported.predict(images), reference.predict(images)):
        assert len(a.scores) > 0
        rows_a = np.concatenate([a.xyxy, a.scores[:, None], a.class_ids[:, None] * 1000.0], axis=1)
        rows_b = np.concatenate([b.xyxy, b.scores[:, None], b.class_ids[:, None] * 1000.0], axis=1)
        assert_same_rows(torch.from_numpy(rows_a), torch.from_numpy(rows_b), atol=1e-2)


@pytest.mark.slow
def test_onnx_with_nms_inside_matches_postprocess(nano, tmp_path):
    meta = dataclasses.replace(META, output_layout="nms", conf_threshold=CONF, nms_iou_threshold=0.45)
    path = export_onnx(fuse_model(nano), tmp_path / "nms.onnx", meta, dynamic_size=False)
    backend = OnnxBackend(path)
    images = _images(3, 416, 416, seed=7)
    raw = backend.session.run(None, {backend.input_name: images.numpy()})[0]
    with torch.no_grad():
        expected = _postprocess_rows(decode(nano(images)), CONF, 0.45)
    assert raw.shape[1] == 7 and len(raw) > 0
    assert_same_rows(torch.from_numpy(raw), expected, atol=1e-2)
    assert_same_detections(backend(images), decode(nano(images)).detach())
