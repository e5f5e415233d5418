"""Runs a TensorRT engine written by ``yoloxdet export --format tensorrt`` (untested until a GPU is
available)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import tensorrt as trt
import torch
from torch import Tensor

from ..export.metadata import ExportMetadata
from ..export.tensorrt import TRT_LOGGER
from .layouts import as_decoded

if TYPE_CHECKING:
    from ..weights import CheckpointInfo


class TensorRTBackend:
    """Runs an engine on the current CUDA device with torch tensors as its buffers (no pycuda)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        sidecar = self.path.with_suffix(".json")
        if not sidecar.is_file():
            raise FileNotFoundError(f"{sidecar}: the yoloxdet metadata of {self.path.name} is missing")
        props = json.loads(sidecar.read_text())
        self.precision = props.pop("tensorrt_precision", "fp32")
        self.metadata = ExportMetadata.from_props(props, sidecar)
        self.engine = trt.Runtime(TRT_LOGGER).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ValueError(
                f"{self.path}: TensorRT cannot load it (built by another TensorRT version or GPU?)"
            )
        self.context = self.engine.create_execution_context()
        self.input_name = self.engine.get_tensor_name(0)
        self.output_name = self.engine.get_tensor_name(1)

    @property
    def info(self) -> CheckpointInfo:
        return self.metadata.checkpoint_info()

    def __call__(self, images: Tensor) -> Tensor:
        device = images.device
        batch = images.to("cuda", torch.float32).contiguous()
        self.context.set_input_shape(self.input_name, tuple(batch.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), device="cuda")
        self.context.set_tensor_address(self.input_name, batch.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        stream.synchronize()
        return as_decoded(out, self.metadata, images).to(device)
