"""Post-training int8 for ONNX: a static QDQ model (per-channel int8 weights, uint8 activations) for
onnxruntime.

Two quantisers write it, both from the same calibration images and with the same float tail:

- ``nncf`` (default): NNCF's post-training quantisation on the ONNX graph (min/max range estimators and *fast
  bias correction*). On the official Nano it loses 0.6 AP on coco128. But onnxruntime does not fuse its Q/DQ
  pattern (Q/DQ on the conv inputs only, the conv outputs float) into int8 kernels: it runs DequantizeLinear
  -> float Conv, *slower* than the fp32 file. It is an accurate, half-size int8 ONNX file (for runtimes that
  fuse that pattern, e.g. TensorRT or OpenVINO reading the ONNX); for int8 speed on a CPU use
  ``--format openvino --int8``, whose CPU plugin runs the same placement in int8.
- ``ort``: onnxruntime's ``quantize_static`` (QDQ on conv inputs *and* outputs, Sigmoid and Mul), which
  onnxruntime fuses into ``QLinearConv``/``QLinearSigmoid``/``QLinearMul`` int8 kernels: YOLOX-S@640 runs at
  0.45-0.46x the fp32 file's time (Nano, depthwise convs against fp32's fused Conv+SiLU: ~1.0x). Out of the
  box it lost 17-20 AP on the official Nano. The cause, found by removing Q/DQ pairs from the quantised graph
  one group at a time: one tensor, the stem's output (:func:`stem_nodes`), whose channels differ ~800x in
  range because YOLOX takes 0-255 images unnormalised; alone it costs 19 AP, all other activations ~1 AP
  (weights alone: none). So the stem's output stays float, and MinMax ranges are the mean of the per-image
  extremes (``CalibMovingAverage``) rather than the extremes over all images: 32.6 AP against fp32's 33.7
  (32 coco128 images; Entropy 27.6, Percentile 29.9; a bias correction like NNCF's gained nothing), 31.6 with
  128 calibration images (``benchmarks/bench_deploy.py``). That is over the 1-AP goal, so ``nncf`` stays the
  default.

Quantisation-aware fine-tuning for ``ort``: ``yoloxdet train DATA.yaml train.weights=W train.quant=qat``
(:mod:`yoloxdet.engine.qat`) trains ``W`` under fake quantisation placed and calibrated as this quantiser
will quantise; its checkpoint is an ordinary float checkpoint that this export quantises as usual. It helps
a little, not enough for the 1-AP goal: on the official Nano (coco128 halves, fine-tuned on one and scored on
the other, 3 epochs of 64 images, 3 seeds; ``benchmarks/bench_qat.py``, the ``qat`` section of
docs/benchmarks.md) the ``ort`` file of the same fine-tune with the fake quantisation off scores 32.6 +- 0.4
AP, 2.9 below its fp32 (35.5), with QAT 33.3 +- 0.8, 2.5 below its fp32 (35.8): +0.7 AP paired (+0.1 to
+1.5 by seed); the start's ``ort`` file is 2.6 below its fp32 (32.1 against 34.7).

Why int8 YOLO loses accuracy elsewhere, and what we keep in float because of it: the prediction convs
(``cls_preds``, ``obj_preds``, ``reg_preds``) feed sigmoids and an ``exp``, and one int8 step there moves a
score or a box by a lot; the decode (grid add, ``exp``, stride multiply, concat of boxes in pixels with scores
in 0-1) mixes ranges that no single int8 scale holds. So the *float tail* of the graph stays float: the convs
from which no other conv can be reached (the prediction convs, found from the graph, not by name) and every
node after them. Everything else (backbone, neck, head stems and branches) runs int8.

:func:`activation_report` is the per-layer sensitivity report (``yoloxdet export --int8-report``): the signal
to quantisation noise ratio (SQNR, dB) of every conv output of the int8 model against the float model on a few
calibration images; a steep fall from one conv to the next points at a layer worth keeping float.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from ..config import ExportConfig
from ..io import write_bytes_atomic

logger = logging.getLogger(__name__)

QUANTIZERS = ("nncf", "ort")
CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
DEFAULT_CALIBRATION_METHOD = "minmax"  # for ``ort``; the best of the three (Percentile) still loses 17 AP
QUANTIZATION_PROP = "yoloxdet_quantization"  # metadata_props entry describing how the file was quantised


class _ArrayReader(CalibrationDataReader):
    """onnxruntime's calibration reader over an iterable of ``[1, 3, h, w]`` arrays, for input ``name``."""

    def __init__(self, batches: Iterable[np.ndarray], name: str) -> None:
        self._batches = batches
        self._name = name
        self._iter: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = iter(self._batches)
        batch = next(self._iter, None)
        return None if batch is None else {self._name: batch}

    def rewind(self) -> None:
        self._iter = None


def float_tail_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes that stay float: convs from which no other conv is reachable, and all nodes after
    them.

    In YOLOX these are the prediction convs (cls/obj/reg, one per level) and the decode behind them.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def downstream(node: onnx.NodeProto) -> list[onnx.NodeProto]:
        seen: dict[int, onnx.NodeProto] = {}
        stack = [node]
        while stack:
            for output in stack.pop().output:
                for nxt in consumers.get(output, []):
                    if id(nxt) not in seen:
                        seen[id(nxt)] = nxt
                        stack.append(nxt)
        return list(seen.values())

    tail: dict[str, None] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        after = downstream(node)
        if not any(n.op_type == "Conv" for n in after):
            tail[node.name] = None
            tail.update((n.name, None) for n in after)
    if not tail:
        raise ValueError("no prediction convs found: not a YOLOX graph")
    return list(tail)


def stem_nodes(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes around the stem's output, which stays float for onnxruntime's quantiser: the first
    conv, the nodes between it and the next convs (its SiLU), and those convs.

    YOLOX takes BGR 0-255 images without normalisation, so the first conv's output channels differ by ~800x
    in range (official Nano: max |x| from 0.16 to 133). One per-tensor uint8 scale (~0.5) for them rounds the
    small channels to 0 or one step, and the depthwise conv after the stem multiplies that error by weights up
    to ~11: quantising that one tensor alone drops the official Nano from 33.7 to 14.8 AP on coco128; all the
    other activations together cost ~1 AP (measured by bypassing Q/DQ pairs of the quantised graph).
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    first = next((node for node in graph.node if node.op_type == "Conv"), None)
    if first is None:
        raise ValueError("no conv found: not a YOLOX graph")
    stem: dict[str, None] = {first.name: None}
    frontier = list(first.output)
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.name not in stem:
                stem[node.name] = None
                if node.op_type != "Conv":  # stop at the convs that read the stem's output
                    frontier.extend(node.output)
    return list(stem)


def quantize_onnx(
    fp32_path: str | Path,
    output: str | Path,
    calibration: Iterable[np.ndarray],
    *,
    quantizer: str = "nncf",
    method: str = DEFAULT_CALIBRATION_METHOD,
    keep_float: Sequence[str] = (),
) -> Path:
    """Write a static int8 QDQ copy of the yoloxdet ONNX file ``fp32_path`` (its metadata kept) to ``output``.

    Args:
        calibration: ``[1, 3, h, w]`` float32 BGR 0-255 letterboxed images
            (:class:`~yoloxdet.export.calibration.CalibrationImages`), at the file's input size; a file
            with a fixed input size is best.
        quantizer: "nncf" (NNCF post-training quantisation with fast bias correction) or "ort" (onnxruntime's
            ``quantize_static``).
        method: "minmax", "entropy" or "percentile" (onnxruntime's calibrators; ``ort`` only).
        keep_float: more node names to keep float, besides :func:`float_tail_nodes`.
    """
    if quantizer not in QUANTIZERS:
        raise ValueError(f"unknown int8 quantizer {quantizer!r}; choose from {', '.join(QUANTIZERS)}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(
            f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}"
        )
    fp32_path, output = Path(fp32_path), Path(output)
    model = onnx.load(str(fp32_path))
    excluded = [*float_tail_nodes(model.graph), *keep_float]
    input_name = model.graph.input[0].name
    if quantizer == "nncf":
        proto = _nncf_quantize(model, calibration, input_name, excluded)
        method = "nncf min/max + fast bias correction"
    else:
        excluded += stem_nodes(model.graph)  # see stem_nodes: NNCF's placement does not need it
        proto = _ort_quantize(fp32_path, calibration, input_name, excluded, method)
    del proto.metadata_props[:]
    proto.metadata_props.extend(model.metadata_props)
    info = {
        "precision": "int8",
        "format": "QDQ",
        "quantizer": quantizer,
        "weights": "int8 per-channel",
        "activations": "uint8",
        "calibration": method,
        "float_nodes": excluded,
    }
    proto.metadata_props.add(key=QUANTIZATION_PROP, value=json.dumps(info))
    proto.producer_name = "yoloxdet"
    write_bytes_atomic(output, proto.SerializeToString())
    return output


def _nncf_quantize(
    model: onnx.ModelProto, calibration: Iterable[np.ndarray], input_name: str, excluded: list[str]
) -> onnx.ModelProto:
    import nncf  # imported here: ~2 s to import, and only the nncf quantizer needs it

    return nncf.quantize(
        model,
        nncf.Dataset(calibration, lambda batch: {input_name: batch}),
        preset=nncf.QuantizationPreset.MIXED,  # asymmetric activations: SiLU outputs are not centred on 0
        subset_size=len(calibration) if isinstance(calibration, Sized) else ExportConfig.calib_images,
        ignored_scope=nncf.IgnoredScope(names=excluded),
    )


def _ort_quantize(
    fp32_path: Path, calibration: Iterable[np.ndarray], input_name: str, excluded: list[str], method: str
) -> onnx.ModelProto:
    # MinMax ranges: the mean of the per-image min and max (onnxruntime's "moving average", all images in one
    # pass), not the extremes of the whole set: 32.6 against 27.6 AP on the official Nano (fp32 33.7)
    with tempfile.TemporaryDirectory(prefix="yoloxdet-int8-") as workdir:
        quantized = Path(workdir) / "int8.onnx"
        quantize_static(
            str(fp32_path),
            str(quantized),
            _ArrayReader(calibration, input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method=CALIBRATION_METHODS[method],
            extra_options={"CalibMovingAverage": True},
        )
        return onnx.load(str(quantized))


def float_node_names(path: str | Path) -> list[str]:
    """Nodes of an int8 file that run in float: those whose inputs come from no DequantizeLinear."""
    graph = onnx.load(str(path)).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return [
        node.name
        for node in graph.node
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and not any(name in dequantized for name in node.input)
    ]


def activation_report(
    fp32_path: str | Path, int8_path: str | Path, images: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """Per conv of the float model: SQNR (dB) of the int8 model's output of that conv against the float
    model's, over ``images``, lowest first. The error is the one accumulated from the input up to that conv:
    where it falls steeply from one conv to the next, that conv is sensitive."""
    float_graph = onnx.load(str(fp32_path)).graph
    tensors = {node.output[0]: node.name for node in float_graph.node if node.op_type == "Conv"}
    input_name = float_graph.input[0].name
    float_acts = _intermediate_outputs(fp32_path, list(tensors), input_name, images)
    int8_acts = _intermediate_outputs(int8_path, list(tensors), input_name, images)
    rows = []
    for tensor, node in tensors.items():
        if tensor not in int8_acts:
            continue  # renamed by the quantiser
        reference = np.concatenate([a.ravel() for a in float_acts[tensor]]).astype(np.float64)
        noise = reference - np.concatenate([a.ravel() for a in int8_acts[tensor]])
        sqnr = 10 * np.log10(np.sum(reference**2) / max(np.sum(noise**2), 1e-30))
        rows.append({"node": node, "tensor": tensor, "sqnr_db": round(float(sqnr), 2)})
    return sorted(rows, key=lambda row: row["sqnr_db"])


def _intermediate_outputs(
    path: str | Path, tensors: list[str], input_name: str, images: Sequence[np.ndarray]
) -> dict[str, list[np.ndarray]]:
    """The values of ``tensors`` (those present in the graph) for each image, by making them graph outputs."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    produced = {out for node in model.graph.node for out in node.output}
    present = [name for name in tensors if name in produced]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in present)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values: dict[str, list[np.ndarray]] = {name: [] for name in present}
    for image in images:
        for name, value in zip(present, session.run(present, {input_name: image})):
            values[name].append(value)
    return values
