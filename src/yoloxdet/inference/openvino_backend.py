"""OpenVINO runtime backend: a yoloxdet IR (``.xml``) -> decoded ``[B, A, 5 + C]``, as the ONNX backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import openvino as ov
import torch
from torch import Tensor

from ..export.openvino import openvino_precision, read_openvino_metadata
from .layouts import as_decoded

if TYPE_CHECKING:
    from ..weights import CheckpointInfo


class OpenVinoBackend:
    """Runs an IR on the OpenVINO CPU plugin: ``images [B, 3, H, W]`` float32 BGR 0-255 -> decoded layout.

    fp32 IRs run in fp32 (``INFERENCE_PRECISION_HINT``): the CPU plugin would otherwise pick bf16 on CPUs with
    AMX/AVX512-BF16, which moves outputs by ~1e-2. int8 IRs run their int8 ops either way.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, device: str = "CPU") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        if not self.path.with_suffix(".bin").is_file():
            raise FileNotFoundError(
                f"{self.path.with_suffix('.bin')}: the weights of {self.path.name} are missing"
            )
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except RuntimeError as exc:
            raise ValueError(f"{self.path}: OpenVINO cannot read it ({str(exc).splitlines()[0]})") from None
        metadata = read_openvino_metadata(model, self.path)
        if metadata is None:
            raise ValueError(
                f"{self.path}: an OpenVINO IR without yoloxdet metadata (export it with yoloxdet)"
            )
        self.metadata = metadata
        self.precision = openvino_precision(model)
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()

    @property
    def info(self) -> CheckpointInfo:
        return self.metadata.checkpoint_info()

    def __call__(self, images: Tensor) -> Tensor:
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        out = self.request.infer({0: array})[self.compiled.output(0)]
        return as_decoded(torch.from_numpy(np.array(out)), self.metadata, images).to(images.device)
