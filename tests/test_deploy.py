"""Deployment formats on the official YOLOX-Nano and coco128: int8 ONNX, OpenVINO fp32/int8, ncnn, TensorRT.

Small on purpose: 320 px input, AP on the first 32 coco128 images, calibration on 16 others (disjoint). The
full measurements (416 px, all 128 images, YOLOX-S latency) are in benchmarks/bench_deploy.py.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from yoloxdet.cli import main
from yoloxdet.engine.evaluator import evaluate_coco, predict_coco_results
from yoloxdet.export import ExportMetadata, export_onnx
from yoloxdet.export.calibration import CalibrationImages
from yoloxdet.export.int8 import QUANTIZATION_PROP, float_node_names, quantize_onnx, stem_nodes
from yoloxdet.export.runtimes import missing_runtime
from yoloxdet.inference.api import Detector, TorchBackend
from yoloxdet.models.fuse import fuse_model
from yoloxdet.weights import load_model

SIZE = (320, 320)
EVAL_IMAGES = 32
AP_TOLERANCE = 0.010  # the goal: int8 within 1.0 AP of fp32


@pytest.fixture(scope="module")
def nano(nano_onnx):
    model, info = load_model(nano_onnx, model_name="yolox-nano")
    return fuse_model(model), info


@pytest.fixture(scope="module")
def fp32_onnx(nano, tmp_path_factory) -> Path:
    model, info = nano
    meta = ExportMetadata(info.model_name, tuple(info.class_names), SIZE, strides=tuple(model.strides))
    return export_onnx(model, tmp_path_factory.mktemp("deploy") / "nano320.onnx", meta, dynamic_size=False)


@pytest.fixture(scope="module")
def subset(coco128):
    """The first EVAL_IMAGES images' ground truth, and 16 other images to calibrate on."""
    gt = json.loads((coco128 / "annotations" / "instances.json").read_text())
    images = sorted(gt["images"], key=lambda i: i["file_name"])[:EVAL_IMAGES]
    ids = {i["id"] for i in images}
    gt = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    calibration = sorted((coco128 / "images").glob("*.jpg"))[-16:]
    return gt, calibration


def _ap(detector: Detector, gt: dict, coco128: Path) -> float:
    results = predict_coco_results(detector, gt, coco128 / "images", progress=False)
    return evaluate_coco(gt, results).ap


def _eval_detector(source) -> Detector:
    return Detector.from_checkpoint(source, conf_threshold=0.001, nms_iou_threshold=0.65)


@pytest.fixture(scope="module")
def fp32_ap(nano, subset, coco128) -> float:
    model, info = nano
    detector = Detector(model, info, conf_threshold=0.001, nms_iou_threshold=0.65, input_size=SIZE)
    return _ap(detector, subset[0], coco128)


def _images(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, *SIZE, generator=torch.Generator().manual_seed(0)) * 255


def _assert_matches_pytorch(backend, model) -> None:
    """fp32 outputs within 1e-3: scores absolutely; boxes (pixels, up to ~1e3) relative to their magnitude."""
    images = _images()
    expected, got = TorchBackend(model)(images), backend(images)
    assert got.shape == expected.shape
    torch.testing.assert_close(got[..., 4:], expected[..., 4:], atol=1e-3, rtol=0)
    torch.testing.assert_close(got[..., :4], expected[..., :4], atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_int8_onnx_keeps_the_float_tail_and_keeps_the_ap(fp32_onnx, subset, fp32_ap, coco128, tmp_path):
    gt, calibration = subset
    out = quantize_onnx(fp32_onnx, tmp_path / "int8.onnx", CalibrationImages(calibration, SIZE))
    # read the graph: the prediction convs (by their weights' names) and the decode's Exp run on float inputs,
    # while the backbone's convs are fed through DequantizeLinear
    graph = onnx.load(str(out)).graph
    floats = set(float_node_names(out))
    weight_of = {n.name: n.input[1] for n in graph.node if n.op_type == "Conv"}
    preds = {
        name for name, w in weight_of.items() if any(k in w for k in ("cls_preds", "obj_preds", "reg_preds"))
    }
    assert len(preds) == 9 and preds <= floats
    assert {n.name for n in graph.node if n.op_type == "Exp"} <= floats
    assert sum(name not in floats for name in weight_of) >= 100  # the other 104 convs are quantised
    info = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}[QUANTIZATION_PROP])
    assert info["precision"] == "int8" and info["quantizer"] == "nncf"
    # loads with no flags, and keeps the AP
    int8_ap = _ap(_eval_detector(out), gt, coco128)
    assert fp32_ap - int8_ap <= AP_TOLERANCE, (fp32_ap, int8_ap)


ORT_AP_TOLERANCE = 0.020  # onnxruntime's quantiser: ~1.1 AP lost at 416 on all of coco128 (it lost 17-20)


@pytest.mark.slow
def test_ort_int8_runs_int8_kernels_keeps_stem_and_tail_float_and_the_ap(
    fp32_onnx, subset, fp32_ap, coco128, tmp_path
):
    import onnxruntime as ort

    gt, calibration = subset
    calibration = CalibrationImages(calibration, SIZE)
    out = quantize_onnx(fp32_onnx, tmp_path / "ort.onnx", calibration, quantizer="ort")
    graph = onnx.load(str(out)).graph
    floats = set(float_node_names(out))
    convs = [n for n in graph.node if n.op_type == "Conv"]
    preds = [n for n in convs if any(k in n.input[1] for k in ("cls_preds", "obj_preds", "reg_preds"))]
    # onnxruntime quantises each SiLU's output, so the prediction convs read int8-rounded features (measured:
    # no AP lost by it), but their weights, biases and outputs stay float, and so does the decode
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized_inputs = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    assert len(preds) == 9
    assert not any(name in dequantized for n in preds for name in n.input[1:])
    assert not any(n.output[0] in quantized_inputs for n in preds)
    assert {n.name for n in graph.node if n.op_type == "Exp"} <= floats
    # the stem's output (the first conv's SiLU) is never quantised: no QuantizeLinear reads it
    stem = set(stem_nodes(onnx.load(str(fp32_onnx)).graph))
    stem_outputs = {o for n in graph.node if n.name in stem and n.op_type != "Conv" for o in n.output}
    assert stem_outputs and not any(
        n.op_type == "QuantizeLinear" and n.input[0] in stem_outputs for n in graph.node
    )
    # onnxruntime's optimised graph runs the body in int8 kernels (the point of this quantiser)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    optimized = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert optimized.count("QLinearConv") >= 90, sorted(set(optimized))
    int8_ap = _ap(_eval_detector(out), gt, coco128)
    assert fp32_ap - int8_ap <= ORT_AP_TOLERANCE, (fp32_ap, int8_ap)


@pytest.mark.slow
@pytest.mark.skipif(missing_runtime("openvino") is not None, reason="openvino not installed")
def test_openvino_fp32_matches_pytorch_and_int8_keeps_the_ap(
    nano, fp32_onnx, subset, fp32_ap, coco128, tmp_path
):
    from yoloxdet.export.openvino import export_openvino
    from yoloxdet.inference.openvino_backend import OpenVinoBackend

    model, _ = nano
    gt, calibration = subset
    meta = ExportMetadata.from_props({p.key: p.value for p in onnx.load(str(fp32_onnx)).metadata_props}, "x")
    fp32 = export_openvino(fp32_onnx, tmp_path / "nano.xml", meta)
    _assert_matches_pytorch(OpenVinoBackend(fp32, threads=2), model)
    int8 = export_openvino(
        fp32_onnx,
        tmp_path / "nano_int8.xml",
        meta,
        calibration=CalibrationImages(calibration, SIZE),
        subset_size=16,
    )
    assert OpenVinoBackend(int8).precision == "int8"
    int8_ap = _ap(_eval_detector(int8), gt, coco128)
    assert fp32_ap - int8_ap <= AP_TOLERANCE, (fp32_ap, int8_ap)
    # `yoloxdet val` on the .xml alone (model, classes and size from its rt_info) gives the same AP
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    metrics = tmp_path / "metrics.json"
    argv = [
        "val",
        str(int8),
        "--images",
        str(coco128 / "images"),
        "--annotations",
        str(tmp_path / "gt.json"),
        "--no-progress",
        "-o",
        str(metrics),
    ]
    assert main(argv) == 0
    assert json.loads(metrics.read_text())["AP"] == pytest.approx(int8_ap, abs=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(missing_runtime("ncnn") is not None, reason="ncnn/pnnx not installed")
def test_ncnn_matches_pytorch_and_serves_the_detector(nano, subset, fp32_ap, coco128, tmp_path):
    from yoloxdet.export.ncnn import export_ncnn
    from yoloxdet.inference.ncnn_backend import NcnnBackend

    model, info = nano
    meta = ExportMetadata(info.model_name, tuple(info.class_names), SIZE, strides=tuple(model.strides))
    param = export_ncnn(model, tmp_path / "nano.ncnn.param", meta)
    _assert_matches_pytorch(NcnnBackend(param, threads=2), model)
    assert _ap(_eval_detector(param), subset[0], coco128) == pytest.approx(fp32_ap, abs=2e-3)


def test_export_cli_int8_onnx_on_a_dataset_folder(nano_onnx, coco128, tmp_path):
    """The CLI path end to end (onnxruntime quantizer, 4 images: the cheap one), and the sensitivity
    report."""
    out = tmp_path / "n_int8.onnx"
    report = tmp_path / "report.json"
    argv = [
        "export",
        str(nano_onnx),
        "--model",
        "yolox-nano",
        "--size",
        "160",
        "--int8",
        "--calibrate",
        str(coco128 / "images"),
        "--calib-images",
        "4",
        "--int8-quantizer",
        "ort",
        "--int8-report",
        str(report),
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    detector = Detector.from_checkpoint(out)
    assert detector.info.model_name == "yolox-nano" and detector.input_size == (160, 160)
    rows = json.loads(report.read_text())
    assert len(rows) == 113 and rows[0]["sqnr_db"] <= rows[-1]["sqnr_db"]


@pytest.mark.skipif(missing_runtime("tensorrt") is None, reason="TensorRT and a CUDA device are present here")
def test_tensorrt_without_its_runtime_fails_at_once_with_the_install_command(nano_onnx, tmp_path, capsys):
    out = tmp_path / "nano.engine"
    assert (
        main(["export", str(nano_onnx), "--model", "yolox-nano", "--format", "tensorrt", "-o", str(out)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install tensorrt" in err and "--format tensorrt" in err
    assert not out.exists()


def test_int8_needs_calibration_images(nano_onnx, tmp_path, capsys):
    assert (
        main(["export", str(nano_onnx), "--model", "yolox-nano", "--int8", "-o", str(tmp_path / "x.onnx")])
        == 2
    )
    assert "--calibrate" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no calibration images"):
        CalibrationImages(tmp_path, SIZE)


def test_calibration_images_are_preprocessed_as_at_inference(coco128):
    from yoloxdet.data.transforms import letterbox, to_chw_float
    from yoloxdet.io import read_image

    path = sorted((coco128 / "images").glob("*.jpg"))[0]
    [batch] = list(CalibrationImages([path], (160, 192)))
    canvas, _ = letterbox(read_image(path), (160, 192))
    assert batch.shape == (1, 3, 160, 192) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], to_chw_float(canvas))


def test_cli_default_calibration_count_is_the_library_default(capsys):
    """The CLI's --calib-images default and the library's both come from config.ExportConfig."""
    import inspect

    from yoloxdet.cli import build_parser
    from yoloxdet.config import ExportConfig
    from yoloxdet.export.calibration import CalibrationImages

    args = build_parser().parse_args(["export", "yolox-nano", "--int8", "--calibrate", "images/"])
    library = inspect.signature(CalibrationImages).parameters["limit"].default
    assert args.calib_images == library == ExportConfig.calib_images


def _check_export_formats(nano_onnx: str, calibration: list[str], out: str) -> None:
    from yoloxdet.bench.formats import export_formats

    model, info = load_model(Path(nano_onnx), model_name="yolox-nano")
    model = fuse_model(model)
    meta = ExportMetadata(info.model_name, tuple(info.class_names), SIZE, strides=tuple(model.strides))
    wanted = ("pytorch", "onnx", "openvino int8")  # formats (all their rows) or single rows
    results = export_formats(
        model, meta, Path(out), CalibrationImages([Path(c) for c in calibration], SIZE), wanted
    )
    names = ["pytorch fp32", "onnx fp32", "onnx int8", "onnx int8-ort", "openvino int8"]
    assert [r.name for r in results] == names  # in the order of FORMATS
    assert results[0].name == "pytorch fp32" and results[0].path is None
    live = [r for r in results[1:] if r.skipped is None]
    assert len({r.path for r in live}) == len(live) >= 3  # fp32 and both int8 ONNX at least: one file each
    images = _images()
    for r in live:
        assert r.path.is_file() and r.path.parent == Path(out), r
        loaded = _eval_detector(r.path)
        assert tuple(loaded.input_size) == SIZE
        expected, got = r.backend(images), loaded.backend(images)
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3, msg=r.name)


@pytest.mark.slow
def test_export_formats_keeps_each_file_that_its_backend_runs(nano_onnx, subset, tmp_path):
    """bench --formats' exports, kept in the work folder: each row's ``path`` loads with no flags (as
    ``yoloxdet val FILE`` loads it) and gives what the row's backend gives (benchmarks/bench_int8_trees.py
    scores these files with ``yoloxdet val``).

    Run in a fresh process: with NNCF, both int8 quantisers and OpenVINO loaded into the pytest process, a
    later ``torch.compile`` test in the same process crashed (SIGSEGV, reproduced twice; not yet
    understood)."""
    child = multiprocessing.get_context("spawn").Process(
        target=_check_export_formats, args=(str(nano_onnx), [str(c) for c in subset[1][:4]], str(tmp_path))
    )
    child.start()
    child.join()
    assert child.exitcode == 0, "the check failed in its process: see its traceback above"
