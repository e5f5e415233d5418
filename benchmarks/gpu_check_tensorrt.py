"""TensorRT check for a machine with a CUDA GPU: engine AP on coco128 and latency against PyTorch AMP.

To be folded into ``benchmarks/gpu_check.py`` (written on another branch). NOT RUN YET: no GPU was available
when this was written, so the TensorRT path of yoloxdet is untested until this script has run somewhere.

    pip install tensorrt && python benchmarks/gpu_check_tensorrt.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from yoloxdet.bench.perf import median, time_interleaved
from yoloxdet.engine.evaluator import evaluate_coco, predict_coco_results
from yoloxdet.export import ExportMetadata
from yoloxdet.export.formats import Int8Options, export_deployment
from yoloxdet.export.runtimes import missing_runtime
from yoloxdet.inference.api import Detector
from yoloxdet.models.fuse import fuse_model
from yoloxdet.ops.decode import decode
from yoloxdet.weights import load_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLOXDET_SHARED", REPO.parent / "shared"))
COCO128 = SHARED / "data" / "coco128"
NANO_ONNX = SHARED / "weights" / "yolox_nano.onnx"


def check_tensorrt(batch: int = 8, iters: int = 20) -> dict:
    """fp16 and int8 engines of the official Nano: coco128 AP of each (and of PyTorch fp32 on the GPU), and
    ms/image at batch 1 and ``batch`` against PyTorch AMP fp16, all taking turns."""
    reason = missing_runtime("tensorrt")
    if reason is not None:
        return {"skipped": reason}
    model, info = load_model(NANO_ONNX, model_name="yolox-nano")
    model = fuse_model(model).cuda().eval()
    meta = ExportMetadata(info.model_name, tuple(info.class_names), (416, 416), strides=tuple(model.strides))
    gt = json.loads((COCO128 / "annotations" / "instances.json").read_text())
    result: dict = {"device": torch.cuda.get_device_name()}

    def ap(detector: Detector) -> float:
        return evaluate_coco(gt, predict_coco_results(detector, gt, COCO128 / "images", progress=False)).ap

    result["ap_pytorch_fp32"] = ap(Detector(model, info, conf_threshold=0.001, nms_iou_threshold=0.65))
    with tempfile.TemporaryDirectory() as workdir:
        engines = {
            "fp16": export_deployment(
                model.cpu(), Path(workdir) / "fp16.engine", meta, "tensorrt", fp16=True
            ),
            "int8": export_deployment(
                model,
                Path(workdir) / "int8.engine",
                meta,
                "tensorrt",
                fp16=True,
                int8=Int8Options(COCO128 / "images", 128),
            ),
        }
        model.cuda()
        detectors = {
            k: Detector.from_checkpoint(p, conf_threshold=0.001, nms_iou_threshold=0.65)
            for k, p in engines.items()
        }
        for name, detector in detectors.items():
            result[f"ap_tensorrt_{name}"] = ap(detector)
        for n in (1, batch):
            images = torch.rand(n, 3, 416, 416, device="cuda") * 255

            def amp(images: torch.Tensor = images) -> torch.Tensor:
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                    return decode(model(images))

            runners = {"pytorch_amp": amp}
            runners.update(
                {f"tensorrt_{k}": (lambda d=d, x=images: d.backend(x)) for k, d in detectors.items()}
            )
            times = time_interleaved(runners, warmup=5, iters=iters, sync=torch.cuda.synchronize, burst=3)
            for name, seconds in times.items():
                result[f"ms_per_image_b{n}_{name}"] = 1000 * median(seconds) / n
    return result


if __name__ == "__main__":
    print(json.dumps(check_tensorrt(), indent=2))
    sys.exit(0)
