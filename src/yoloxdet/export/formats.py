"""Deployment exports in one call: int8 ONNX, OpenVINO (fp32/int8), ncnn, TensorRT (fp16/int8).

:func:`export_deployment` is what ``yoloxdet export --format openvino|ncnn|tensorrt`` and ``--int8`` run, and
what ``yoloxdet bench --formats all`` exports with. Every int8 path is calibrated on the same images,
preprocessed as at inference (:class:`~yoloxdet.export.calibration.CalibrationImages`), and keeps the same
float tail (prediction convs and decode). The runtimes are optional: a missing one fails at once with the
install command (:mod:`yoloxdet.export.runtimes`).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..config import ExportConfig
from ..io import write_bytes_atomic, write_json_atomic
from .calibration import CalibrationImages
from .metadata import ExportMetadata
from .runtimes import require_runtime
from .writers import export_onnx

logger = logging.getLogger(__name__)

DEPLOY_FORMATS = ("onnx", "openvino", "ncnn", "tensorrt")
# what `yoloxdet export` names the output after the weights: stem + suffix
DEPLOY_SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "ncnn": ".ncnn.param", "tensorrt": ".engine"}


@dataclass(frozen=True)
class Int8Options:
    """Post-training int8: calibration images (folder, glob or dataset YAML), how many, and the method."""

    calibrate: str | Path
    images: int = ExportConfig.calib_images
    quantizer: str = "nncf"  # ONNX int8: "nncf" or "ort" (onnxruntime's quantize_static; see export/int8.py)
    method: str = (
        "minmax"  # onnxruntime's calibrator (quantizer "ort" only; NNCF has its own range estimators)
    )
    report: Path | None = None  # per-layer sensitivity report (JSON), ONNX int8 only


def export_deployment(
    model: nn.Module,
    output: str | Path,
    metadata: ExportMetadata,
    fmt: str,
    *,
    int8: Int8Options | None = None,
    fp16: bool = False,
) -> Path:
    """Write ``model`` (BN folded) in ``fmt`` to ``output``; int8 when ``int8`` is given (ONNX, OpenVINO,
    TensorRT), fp16 TensorRT with ``fp16``. The input size is fixed to ``metadata.input_size``."""
    if fmt not in DEPLOY_FORMATS:
        raise ValueError(f"unknown deployment format {fmt!r}; choose from {', '.join(DEPLOY_FORMATS)}")
    require_runtime(
        "onnx-int8" if fmt == "onnx" and int8 and int8.quantizer == "nncf" else fmt, f"--format {fmt}"
    )
    if int8 is not None and fmt == "ncnn":
        raise ValueError("--int8 is not available for ncnn here (ncnn's own int8 tool needs its C++ build)")
    output = Path(output)
    if fmt == "ncnn":
        from .ncnn import export_ncnn  # pnnx is an optional dependency, imported when asked for

        return export_ncnn(model, output, metadata)
    calibration = None
    if int8 is not None:
        calibration = CalibrationImages(int8.calibrate, metadata.input_size, int8.images)
        logger.info("calibrating on %d images from %s", len(calibration), int8.calibrate)
    with tempfile.TemporaryDirectory(prefix="yoloxdet-deploy-") as workdir:
        fp32_onnx = Path(workdir) / "fp32.onnx"
        # a fixed input size: quantisers and engine builders want static shapes; the batch stays dynamic
        export_onnx(model, fp32_onnx, metadata, dynamic_size=False)
        if fmt == "onnx":
            if calibration is None:  # copied, not moved: the temp folder may be on another file system
                write_bytes_atomic(output, fp32_onnx.read_bytes())
                return output
            return _onnx_int8(fp32_onnx, output, calibration, int8)
        if fmt == "openvino":
            from .openvino import export_openvino  # optional dependency

            return export_openvino(
                fp32_onnx,
                output,
                metadata,
                calibration=calibration,
                subset_size=len(calibration) if calibration is not None else ExportConfig.calib_images,
            )
        from .tensorrt import build_engine  # optional dependency

        source = fp32_onnx
        if calibration is not None:  # TensorRT builds int8 from the explicit Q/DQ of our int8 ONNX
            source = _onnx_int8(fp32_onnx, Path(workdir) / "int8.onnx", calibration, int8)
        return build_engine(source, output, metadata, fp16=fp16, int8=calibration is not None)


def _onnx_int8(fp32_onnx: Path, output: Path, calibration: CalibrationImages, options: Int8Options) -> Path:
    from .int8 import activation_report, quantize_onnx

    quantize_onnx(fp32_onnx, output, calibration, quantizer=options.quantizer, method=options.method)
    if options.report is not None:
        images = [batch for batch, _ in zip(calibration, range(8))]  # 8 images: the report is a ranking
        rows = activation_report(fp32_onnx, output, images)
        write_json_atomic(options.report, rows)
        worst = ", ".join(f"{r['node']} {r['sqnr_db']:.1f} dB" for r in rows[:5])
        logger.warning("int8 sensitivity report -> %s; lowest SQNR: %s", options.report, worst)
    return output
