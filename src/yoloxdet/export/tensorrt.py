"""TensorRT engines (fp32, fp16, int8) from our fixed-size ONNX export, and the engine builder (the runtime is
``inference/tensorrt_backend.py``).

UNTESTED: written without a GPU (no CUDA device was available to this work);
``benchmarks/gpu_check_tensorrt.py`` is the check to run on a machine that has one. int8 is built from the
explicit Q/DQ nodes of our int8 ONNX (:mod:`yoloxdet.export.int8`, same calibration images and float tail),
TensorRT 10's recommended path; the implicit calibrator API is deprecated there. ``--format tensorrt`` without
the ``tensorrt`` package or a CUDA device fails before any work with one line
(:func:`~yoloxdet.export.runtimes.require_runtime`).

The engine has no metadata slot: :class:`~yoloxdet.export.ExportMetadata` goes to a ``.json`` beside it. An
engine only runs on the GPU model and TensorRT version that built it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tensorrt as trt

from ..io import write_bytes_atomic, write_json_atomic
from .metadata import ExportMetadata

if TYPE_CHECKING:
    pass

MAX_BATCH = 32
TRT_LOGGER = trt.Logger(trt.Logger.WARNING)


def build_engine(
    onnx_path: str | Path,
    output: str | Path,
    metadata: ExportMetadata,
    *,
    fp16: bool = False,
    int8: bool = False,
    max_batch: int = MAX_BATCH,
    workspace_gb: float = 4.0,
) -> Path:
    """Build a serialized engine from a fixed-size ONNX file; batch 1 to ``max_batch`` (optimised for 1)."""
    output = Path(output)
    builder = trt.Builder(TRT_LOGGER)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, TRT_LOGGER)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"{onnx_path}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    height, width = metadata.input_size
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, (1, 3, height, width), (1, 3, height, width), (max_batch, 3, height, width))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{output}: TensorRT could not build the engine (see its log above)")
    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    write_json_atomic(output.with_suffix(".json"), {**metadata.to_props(), "tensorrt_precision": precision})
    write_bytes_atomic(output, bytes(serialized))
    return output
