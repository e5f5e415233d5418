"""ncnn runtime backend: a yoloxdet ``.param``/``.bin`` (raw layout, fixed size) -> decoded
``[B, A, 5 + C]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import ncnn
import numpy as np
import torch
from torch import Tensor

from ..export.ncnn import ncnn_paths, read_ncnn_metadata
from .layouts import as_decoded

if TYPE_CHECKING:
    from ..weights import CheckpointInfo


class NcnnBackend:
    """Runs an ncnn export image by image (ncnn has no batch axis), fp32 throughout (no fp16
    storage/arithmetic, no packing to fp16), then decodes the raw layout. The input size is the exported
    one."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        param, weights, _ = ncnn_paths(path)
        for required in (param, weights):
            if not required.is_file():
                raise FileNotFoundError(f"{required}: no such file")
        self.path = param
        self.metadata, self.input_name, self.output_name = read_ncnn_metadata(param)
        self.net = ncnn.Net()
        self.net.opt.use_fp16_packed = False
        self.net.opt.use_fp16_storage = False
        self.net.opt.use_fp16_arithmetic = False
        self.net.opt.use_bf16_storage = False
        if threads:
            self.net.opt.num_threads = threads
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
            raise ValueError(f"{param}: ncnn cannot load it (or its .bin)")

    @property
    def info(self) -> CheckpointInfo:
        return self.metadata.checkpoint_info()

    def __call__(self, images: Tensor) -> Tensor:
        size = tuple(images.shape[2:])
        if size != tuple(self.metadata.input_size):
            raise ValueError(f"{self.path}: exported for input {self.metadata.input_size}, got {size}")
        array = images.detach().to("cpu", torch.float32).numpy()
        outputs = []
        for image in array:
            with self.net.create_extractor() as extractor:
                extractor.input(self.input_name, ncnn.Mat(np.ascontiguousarray(image)).clone())
                _, out = extractor.extract(self.output_name)
                outputs.append(np.array(out))
        raw = torch.from_numpy(np.stack(outputs)).reshape(len(array), -1, 5 + len(self.metadata.class_names))
        return as_decoded(raw, self.metadata, images).to(images.device)
