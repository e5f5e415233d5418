"""Runtime backends for exported files: ``images [B, 3, H, W]`` float32 BGR 0-255 -> decoded
``[B, A, 5 + C]``.

They read the :class:`~yoloxdet.export.metadata.ExportMetadata` stored in the file, so
a :class:`~yoloxdet.inference.api.Detector` built on them needs nothing else. Files with NMS inside the graph
return their detections re-packed in the decoded layout (one-hot class scores), so the Detector's own filter
and NMS pass them through unchanged.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..export.metadata import TORCHSCRIPT_EXTRA, ExportMetadata, read_onnx_metadata
from ..weights import CheckpointInfo
from .layouts import as_decoded


class OnnxBackend:
    """Runs an ONNX file with onnxruntime: ``images [B, 3, H, W]`` float32 BGR 0-255 -> decoded
    ``[B, A, 5 + C]``.

    yoloxdet exports describe themselves (:class:`ExportMetadata`). Other files, such as the official
    ``tools/export_onnx.py`` outputs (raw layout, often a fixed batch of 1 and a fixed size), need
    ``metadata``; a fixed batch dimension is served by running the batch in chunks. ``busy_wait``: the
    intra-op threads spin between operators (onnxruntime's default: lowest latency on otherwise idle cores);
    False makes them sleep, leaving the cores to the process's other threads (a server's HTTP and decoding)
    and other processes: on 2 busy cores spinning doubled the CPU time of a YOLOX-Nano pass (docs/serving.md).

    Example:
        >>> backend = OnnxBackend("yolox_s.onnx", threads=2)  # doctest: +SKIP
        >>> decoded = backend(torch.zeros(1, 3, 640, 640))  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        metadata: ExportMetadata | None = None,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        busy_wait: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if busy_wait else "0")
        try:
            providers = list(providers or default_providers())
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own error types
            raise ValueError(
                f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})"
            ) from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        if metadata is None and "model_name" not in props:
            raise ValueError(
                f"{self.path}: no yoloxdet metadata; give the model name and size (official ONNX files are "
                "imported with yoloxdet.weights.load_model)"
            )
        self.metadata: ExportMetadata = metadata or ExportMetadata.from_props(props, self.path)
        image_input = self.session.get_inputs()[0]
        self.input_name = image_input.name
        fixed_batch = image_input.shape[0]
        self.fixed_batch = fixed_batch if isinstance(fixed_batch, int) and fixed_batch > 0 else None

    @property
    def info(self) -> CheckpointInfo:
        return self.metadata.checkpoint_info()

    def __call__(self, images: Tensor) -> Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        step = self.fixed_batch or len(array)
        chunks = [
            self.session.run(None, {self.input_name: array[i : i + step]})[0]
            for i in range(0, len(array), step)
        ]
        if self.metadata.output_layout == "nms":  # chunks hold image indices relative to their chunk
            chunks = [c + np.eye(7, dtype=c.dtype)[0] * i * step for i, c in enumerate(chunks)]
        out = torch.from_numpy(np.concatenate(chunks) if len(chunks) > 1 else chunks[0])
        return as_decoded(out, self.metadata, images).to(images.device)


def default_providers() -> list[str]:
    """onnxruntime's CUDA provider first when this onnxruntime has it (onnxruntime-gpu), then the CPU."""
    import onnxruntime as ort

    cuda = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in ort.get_available_providers() else []
    return [*cuda, "CPUExecutionProvider"]


class TorchScriptBackend:
    """Runs a yoloxdet TorchScript export (decoded or raw layout) on ``device`` (exports are device-agnostic);
    results come back on the device of the inputs."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu") -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        extra = {TORCHSCRIPT_EXTRA: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # deprecation notice of torch.jit
                module = torch.jit.load(str(self.path), map_location=self.device, _extra_files=extra)
                self.module = module.eval()
        except RuntimeError as exc:
            raise ValueError(f"{self.path}: not a TorchScript archive ({str(exc).splitlines()[0]})") from None
        if not extra[TORCHSCRIPT_EXTRA]:
            raise ValueError(f"{self.path}: TorchScript archive without yoloxdet metadata")
        self.metadata = ExportMetadata.from_props(json.loads(extra[TORCHSCRIPT_EXTRA]), self.path)

    @property
    def info(self) -> CheckpointInfo:
        return self.metadata.checkpoint_info()

    def __call__(self, images: Tensor) -> Tensor:
        with torch.inference_mode():
            out = self.module(images.to(self.device, torch.float32))
        return as_decoded(out, self.metadata, images).to(images.device)


TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts", ".jit")


def load_exported(
    source: str | Path, device: str | torch.device = "cpu", *, busy_wait: bool = True
) -> tuple[OnnxBackend | TorchScriptBackend, CheckpointInfo] | None:
    """The backend and info of a yoloxdet export (``.onnx`` with metadata, or TorchScript on ``device``), else
    None. ONNX picks its provider itself (:func:`default_providers`); ``busy_wait`` as
    :class:`OnnxBackend`."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".onnx" and path.is_file() and (metadata := read_onnx_metadata(path)) is not None:
        backend: OnnxBackend | TorchScriptBackend = OnnxBackend(path, metadata, busy_wait=busy_wait)
    elif suffix in TORCHSCRIPT_SUFFIXES and path.is_file():
        backend = TorchScriptBackend(path, device)
    else:
        from .deployed import load_deployed  # OpenVINO / ncnn / TensorRT files (optional runtimes)

        return load_deployed(path)
    return backend, backend.info
