"""OpenVINO IR (``.xml`` + ``.bin``), fp32 or int8 through NNCF, converted from our fp32 ONNX export.

The :class:`~yoloxdet.export.ExportMetadata` goes into the IR's ``rt_info`` under ``yoloxdet`` (one string per
key, as in ONNX ``metadata_props``), so the ``.xml`` describes itself: ``Detector.from_checkpoint("m.xml")``.
int8 uses ``nncf.quantize`` on the same calibration images as onnxruntime
(:class:`~yoloxdet.export.calibration.CalibrationImages`), with the same float tail in its ignored scope: the
prediction convs (convs from which no other conv is reachable) and everything after them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import openvino as ov

from ..config import ExportConfig
from ..io import write_bytes_atomic
from .metadata import ExportMetadata

RT_INFO_SECTION = "yoloxdet"
QUANTIZATION_KEY = "yoloxdet_quantization"


def float_tail_ops(model: ov.Model) -> list[str]:
    """Friendly names of the ops that stay float: convs with no conv after them, and every op after those."""
    tail: dict[str, None] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        after: dict[str, ov.Node] = {}
        stack = [op]
        while stack:
            for output in stack.pop().outputs():
                for target in output.get_target_inputs():
                    node = target.get_node()
                    if node.get_friendly_name() not in after:
                        after[node.get_friendly_name()] = node
                        stack.append(node)
        if not any(node.get_type_name() == "Convolution" for node in after.values()):
            tail[op.get_friendly_name()] = None
            tail.update((name, None) for name, node in after.items() if node.get_type_name() != "Result")
    if not tail:
        raise ValueError("no prediction convs found: not a YOLOX graph")
    return list(tail)


def quantize_openvino(model: ov.Model, calibration: Iterable[np.ndarray], subset_size: int) -> ov.Model:
    """int8 activations and per-channel int8 weights through NNCF, the float tail ignored."""
    import nncf  # imported here: NNCF takes ~2 s to import and only int8 export needs it

    ignored = nncf.IgnoredScope(names=float_tail_ops(model))
    return nncf.quantize(
        model,
        nncf.Dataset(calibration),
        preset=nncf.QuantizationPreset.MIXED,  # asymmetric activations: SiLU outputs are not centred on 0
        subset_size=subset_size,
        ignored_scope=ignored,
    )


def export_openvino(
    onnx_path: str | Path,
    output: str | Path,
    metadata: ExportMetadata,
    *,
    calibration: Iterable[np.ndarray] | None = None,
    subset_size: int = ExportConfig.calib_images,
) -> Path:
    """Convert our fp32 ONNX file to an IR at ``output`` (``.xml``; the ``.bin`` is written beside it).

    With ``calibration`` (``[1, 3, h, w]`` letterboxed BGR 0-255 arrays) the IR is int8.
    """
    output = Path(output)
    if output.suffix != ".xml":
        raise ValueError(f"{output}: an OpenVINO IR is named *.xml (its weights go to *.bin beside it)")
    model = ov.convert_model(str(onnx_path))
    quantization = {"precision": "fp32"}
    if calibration is not None:
        model = quantize_openvino(model, calibration, subset_size)
        quantization = {
            "precision": "int8",
            "tool": "nncf",
            "preset": "mixed",
            "float_ops": float_tail_ops(model),
        }
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_INFO_SECTION, key])
    model.set_rt_info(json.dumps(quantization), [RT_INFO_SECTION, QUANTIZATION_KEY])
    with tempfile.TemporaryDirectory(prefix="yoloxdet-openvino-") as workdir:
        tmp_xml = Path(workdir) / "model.xml"
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        # the .bin first: an .xml is only ever in place once its weights are
        write_bytes_atomic(output.with_suffix(".bin"), tmp_xml.with_suffix(".bin").read_bytes())
        write_bytes_atomic(output, tmp_xml.read_bytes())
    return output


def read_openvino_metadata(model: ov.Model, source: str | Path) -> ExportMetadata | None:
    """The :class:`ExportMetadata` in an IR's ``rt_info``, or None for an IR that yoloxdet did not write."""
    if not model.has_rt_info([RT_INFO_SECTION, "model_name"]):
        return None
    props = {}
    for key in ExportMetadata.__dataclass_fields__:
        if model.has_rt_info([RT_INFO_SECTION, key]):
            props[key] = model.get_rt_info([RT_INFO_SECTION, key]).astype(str)
    return ExportMetadata.from_props(props, source)


def openvino_precision(model: ov.Model) -> str:
    if model.has_rt_info([RT_INFO_SECTION, QUANTIZATION_KEY]):
        return json.loads(model.get_rt_info([RT_INFO_SECTION, QUANTIZATION_KEY]).astype(str))["precision"]
    return "fp32"
