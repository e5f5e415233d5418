"""Runtime backends for exported files: ``images [B, 3, H, W]`` float32 BGR 0-255 -> decoded ``[B, A, 5 + C]``.

They read the :class:`~yoloxdet.export.ExportMetadata` stored in the file, so a :class:`~yoloxdet.api.Detector`
built on them needs nothing else. Files with NMS inside the graph return their detections re-packed in the decoded
layout (one-hot class scores), so the Detector's own filter and NMS pass them through unchanged.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .export import TORCHSCRIPT_EXTRA, ExportMetadata, decode_raw_layout, read_onnx_metadata

if TYPE_CHECKING:
    from .weights import CheckpointInfo


def detections_to_decoded(detections: Tensor, batch: int, num_classes: int) -> Tensor:
    """``[N, 7]`` NMS output (image, x1, y1, x2, y2, score, class) -> ``[B, M, 5 + C]`` decoded layout.

    Each detection becomes a row with obj = score and a one-hot class, so ``obj * cls`` is its score again;
    padding rows get obj -1 and never pass a score filter.
    """
    detections = detections[torch.argsort(detections[:, 0], stable=True)]  # group by image, keep score order
    image_ids = detections[:, 0].long()
    counts = torch.bincount(image_ids, minlength=batch)
    first_slot = (torch.cumsum(counts, 0) - counts)[image_ids]
    slot = torch.arange(len(detections), device=detections.device) - first_slot
    out = detections.new_zeros(batch, int(counts.max()) if len(detections) else 0, 5 + num_classes)
    out[..., 4], out[..., 5] = -1.0, 1.0
    x1, y1, x2, y2 = detections[:, 1:5].unbind(dim=1)
    out[image_ids, slot, :4] = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=1)
    out[image_ids, slot, 4] = detections[:, 5]
    out[image_ids, slot, 5] = 0.0
    out[image_ids, slot, 5 + detections[:, 6].long()] = 1.0
    return out


def as_decoded(out: Tensor, metadata: ExportMetadata, images: Tensor) -> Tensor:
    """A backend's raw answer in the decoded ``[B, A, 5 + C]`` layout whatever the file's output layout."""
    if metadata.output_layout == "raw":
        return decode_raw_layout(out, metadata.strides, (images.shape[2], images.shape[3]))
    if metadata.output_layout == "nms":
        return detections_to_decoded(out, len(images), len(metadata.class_names))
    return out


class OnnxBackend:
    """Runs an ONNX file with onnxruntime: ``images [B, 3, H, W]`` float32 BGR 0-255 -> decoded ``[B, A, 5 + C]``.

    yoloxdet exports describe themselves (:class:`ExportMetadata`). Other files, such as the official
    ``tools/export_onnx.py`` outputs (raw layout, often a fixed batch of 1 and a fixed size), need ``metadata``;
    a fixed batch dimension is served by running the batch in chunks.

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
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            providers = list(providers or default_providers())
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own error types
            raise ValueError(f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
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
            self.session.run(None, {self.input_name: array[i : i + step]})[0] for i in range(0, len(array), step)
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
    source: str | Path, device: str | torch.device = "cpu"
) -> tuple[OnnxBackend | TorchScriptBackend, CheckpointInfo] | None:
    """The backend and info of a yoloxdet export (``.onnx`` with metadata, or TorchScript on ``device``), else
    None. ONNX picks its provider itself (:func:`default_providers`)."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".onnx" and path.is_file() and (metadata := read_onnx_metadata(path)) is not None:
        backend: OnnxBackend | TorchScriptBackend = OnnxBackend(path, metadata)
    elif suffix in TORCHSCRIPT_SUFFIXES and path.is_file():
        backend = TorchScriptBackend(path, device)
    else:
        return None
    return backend, backend.info
