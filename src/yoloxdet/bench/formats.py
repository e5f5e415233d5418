"""``yoloxdet bench WEIGHTS --formats all --data DATA.yaml``: every deployment format, exported, scored and
timed.

One model is exported once to a fixed-size fp32 ONNX file and from there to each format whose runtime is
installed (int8 ONNX, OpenVINO fp32/int8, ncnn, TensorRT fp16/int8); the rest are listed as skipped with their
install command. Each format's :class:`~yoloxdet.inference.api.Detector` is scored (COCO AP, official
evaluation settings: conf 0.001, NMS 0.65) on the same images, and timed on the same random 0-255 batches with
:func:`~yoloxdet.bench.perf.time_interleaved`, all formats taking turns, at batch 1 and at batch N. PyTorch
fp32 is the AP reference, fp32 onnxruntime the latency reference.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import ExportConfig
from ..export import ExportMetadata, export_onnx
from ..export.calibration import CalibrationImages
from ..export.runtimes import RUNTIMES, missing_runtime
from ..inference.api import Detector, TorchBackend
from ..inference.backends import OnnxBackend
from .perf import median, time_interleaved

logger = logging.getLogger(__name__)

# (name, precision, runtime); the order of the table
FORMATS: tuple[tuple[str, str, str], ...] = (
    ("pytorch", "fp32", "pytorch"),
    ("onnx", "fp32", "onnx"),
    ("onnx", "int8", "onnx-int8"),  # NNCF's quantiser (the export default: the accurate one)
    ("onnx", "int8-ort", "onnx"),  # onnxruntime's quantize_static: fused into int8 kernels, the fast one
    ("openvino", "fp32", "openvino"),
    ("openvino", "int8", "openvino"),
    ("ncnn", "fp32", "ncnn"),
    ("tensorrt", "fp16", "tensorrt"),
    ("tensorrt", "int8", "tensorrt"),
)


@dataclass
class FormatResult:
    format: str
    precision: str
    size_mb: float | None = None
    ap: float | None = None
    ms_batch1: float | None = None
    ms_batch_n: float | None = None
    skipped: str | None = None  # why, with the install command
    path: Path | None = None  # the exported file the backend runs (None for PyTorch and skipped formats)
    backend: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.format} {self.precision}"


@dataclass
class FormatsReport:
    model_name: str
    input_size: int
    batch: int
    threads: int
    images: int
    calibration: str
    results: list[FormatResult]

    def _reference(self, fmt: str) -> FormatResult | None:
        return next((r for r in self.results if r.name == fmt and r.skipped is None), None)

    def rows(self) -> list[list[str]]:
        """Table cells: format, precision, size, AP, AP drop vs PyTorch fp32, ms/image b1 and bN, x
        fp32-ONNX."""
        torch_ref, onnx_ref = self._reference("pytorch fp32"), self._reference("onnx fp32")
        rows = []
        for r in self.results:
            if r.skipped is not None:
                rows.append([r.format, r.precision, "", "", "", "", "", f"skipped: {r.skipped}"])
                continue
            drop = (
                100 * (torch_ref.ap - r.ap)
                if torch_ref and torch_ref.ap is not None and r.ap is not None
                else None
            )
            ratio = r.ms_batch1 / onnx_ref.ms_batch1 if onnx_ref else None
            rows.append(
                [
                    r.format,
                    r.precision,
                    f"{r.size_mb:.1f}" if r.size_mb is not None else "-",
                    f"{100 * r.ap:.1f}" if r.ap is not None else "-",
                    f"{drop:+.1f}" if drop is not None else "-",
                    f"{r.ms_batch1:.1f}",
                    f"{r.ms_batch_n:.1f}",
                    f"{ratio:.2f}" if ratio is not None else "-",
                ]
            )
        return rows

    def headers(self) -> list[str]:
        return [
            "format",
            "precision",
            "MB",
            "AP",
            "AP drop",
            "ms/img b1",
            f"ms/img b{self.batch}",
            "x onnx fp32",
        ]

    def format_text(self) -> str:
        table = [self.headers(), *self.rows()]
        widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(table[0]))]
        lines = [
            f"{self.model_name} @ {self.input_size}, AP on {self.images} images, {self.threads} threads, "
            f"int8 calibrated on {self.calibration}"
        ]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.headers()) + " |", "|" + "---|" * len(self.headers())]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        return "\n".join(lines)


def _file_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def export_formats(
    model: nn.Module,
    metadata: ExportMetadata,
    workdir: Path,
    calibration: CalibrationImages | None,
    wanted: Sequence[str],
    threads: int = 1,
) -> list[FormatResult]:
    """Export ``model`` (BN folded) into ``workdir`` in every wanted format whose runtime is here: per row of
    :data:`FORMATS`, the loaded backend and the file it runs (``path``, which ``yoloxdet val/predict`` and
    ``Detector.from_checkpoint`` also load), or why it was skipped.

    ``wanted`` names formats (``"onnx"``: all its rows) or single rows (``"onnx int8-ort"``)."""
    results = []
    fp32_onnx = export_onnx(model, workdir / "fp32.onnx", metadata, dynamic_size=False)
    int8_onnx: Path | None = None
    for fmt, precision, runtime in FORMATS:
        name = f"{fmt} {precision}"
        if fmt not in wanted and name not in wanted:
            continue
        result = FormatResult(fmt, precision)
        results.append(result)
        reason = missing_runtime(runtime) if runtime in RUNTIMES else None
        if reason is None and precision.startswith("int8") and calibration is None:
            reason = "no calibration images (give --calibrate)"
        if reason is not None:
            result.skipped = reason
            continue
        logger.info("exporting %s", name)
        if fmt == "pytorch":
            result.backend = TorchBackend(model)
            result.size_mb = sum(p.numel() * 4 for p in model.parameters()) / 2**20
        elif fmt == "onnx":
            if precision == "fp32":
                out = fp32_onnx
            else:
                from ..export.int8 import quantize_onnx

                quantizer = "ort" if precision == "int8-ort" else "nncf"
                out = quantize_onnx(
                    fp32_onnx, workdir / f"{precision}.onnx", calibration, quantizer=quantizer
                )
                if quantizer == "nncf":
                    int8_onnx = out  # TensorRT builds from NNCF's placement
            result.backend, result.path = OnnxBackend(out, threads=threads), out
            result.size_mb = _file_mb(out)
        elif fmt == "openvino":
            from ..export.openvino import export_openvino
            from ..inference.openvino_backend import OpenVinoBackend

            xml = export_openvino(
                fp32_onnx,
                workdir / f"openvino_{precision}.xml",
                metadata,
                calibration=calibration if precision == "int8" else None,
                subset_size=len(calibration) if calibration is not None else ExportConfig.calib_images,
            )
            result.backend, result.path = OpenVinoBackend(xml, threads=threads), xml
            result.size_mb = _file_mb(xml, xml.with_suffix(".bin"))
        elif fmt == "ncnn":
            from ..export.ncnn import export_ncnn
            from ..inference.ncnn_backend import NcnnBackend

            param = export_ncnn(model, workdir / "model.ncnn.param", metadata)
            result.backend, result.path = NcnnBackend(param, threads=threads), param
            result.size_mb = _file_mb(param, param.with_suffix(".bin"))
        else:  # tensorrt
            from ..export.int8 import quantize_onnx
            from ..export.tensorrt import build_engine
            from ..inference.tensorrt_backend import TensorRTBackend

            source = fp32_onnx
            if precision == "int8":
                source = int8_onnx or quantize_onnx(fp32_onnx, workdir / "int8.onnx", calibration)
            engine = build_engine(
                source, workdir / f"model_{precision}.engine", metadata, fp16=True, int8=precision == "int8"
            )
            result.backend, result.path, result.size_mb = TensorRTBackend(engine), engine, _file_mb(engine)
    return results


def bench_formats(
    model: nn.Module,
    metadata: ExportMetadata,
    gt: dict,
    samples: Callable[[], Any],
    *,
    formats: Sequence[str] = tuple(dict.fromkeys(f for f, _, _ in FORMATS)),
    calibrate: str | Path | None = None,
    calib_images: int = ExportConfig.calib_images,
    batch: int = 8,
    threads: int = 1,
    warmup: int = 2,
    iters: int = 10,
    burst: int = 3,
    score: bool = True,
) -> FormatsReport:
    """Export ``model`` (BN folded) to ``formats``, score each on ``gt`` and time each.

    Args:
        gt: COCO ground truth of the images ``samples()`` yields (``(image_id, BGR image)`` pairs, a new
            iterator per call), as :func:`~yoloxdet.engine.evaluator.predict_coco_results` takes them.
        calibrate: int8 calibration images (folder, glob or dataset YAML); int8 formats are skipped without
            them.
        score: measure AP (False: latency only, e.g. for random weights).
    """
    from ..engine.evaluator import evaluate_coco, predict_coco_results

    torch.set_num_threads(threads)
    model = model.eval()
    size = metadata.input_size
    calibration = CalibrationImages(calibrate, size, calib_images) if calibrate else None
    with tempfile.TemporaryDirectory(prefix="yoloxdet-formats-") as workdir:
        results = export_formats(model, metadata, Path(workdir), calibration, formats, threads)
        live = [r for r in results if r.skipped is None]
        for r in live if score else ():
            logger.info("scoring %s", r.name)
            detector = Detector(
                r.backend,
                metadata.checkpoint_info(),
                conf_threshold=0.001,
                nms_iou_threshold=0.65,
                input_size=size,
                batch_size=batch,
            )
            r.ap = evaluate_coco(gt, predict_coco_results(detector, gt, samples(), progress=False)).ap
        gen = torch.Generator().manual_seed(0)
        for n, attr in ((1, "ms_batch1"), (batch, "ms_batch_n")):
            images = torch.rand(n, 3, *size, generator=gen) * 255
            runners = {r.name: (lambda b=r.backend, x=images: b(x)) for r in live}
            times = time_interleaved(runners, warmup=warmup, iters=iters, burst=burst)
            for r in live:
                setattr(r, attr, 1000 * median(times[r.name]) / n)
        for r in results:
            r.backend = None  # release sessions before the files go
    return FormatsReport(
        metadata.model_name,
        size[0],
        batch,
        threads,
        len(gt["images"]),
        str(calibrate) if calibrate else "-",
        results,
    )
