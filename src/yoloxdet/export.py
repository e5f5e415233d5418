"""Export to ONNX / TorchScript with the preprocessing recorded inside (runtimes: :mod:`yoloxdet.backends`).

The model stays raw (:class:`~yoloxdet.structures.HeadOutputs`); :class:`ExportWrapper` adds decoding on top, so
the exported graph returns the official inference layout ``[B, A, 5 + C]`` (cxcywh boxes in input pixels,
sigmoid obj, sigmoid cls). Other output layouts:

- ``raw``: the official ``tools/export_onnx.py`` default (raw ``tx, ty, tw, th``, then the sigmoids; reference §7.1).
- ``nms``: score filter and class-aware NMS inside the graph, ``[N, 7]`` rows
  ``(image index, x1, y1, x2, y2, score, class)`` with the thresholds recorded in the metadata.

The anchor grid is built from the input's (symbolic) height and width, so one file serves every batch size and
every input size that is a multiple of 32. ONNX export uses the maintained ``torch.onnx.export(..., dynamo=True)``
path (it needs ``onnxscript``); it is slow on CPU (~20 s for a fixed size, several times that with a dynamic
size, because of symbolic shape reasoning) but the exported model is not. Each file carries
:class:`ExportMetadata` (``metadata_props`` in ONNX, an extra file in TorchScript), which the backends read back,
so ``Detector.from_checkpoint("model.onnx")`` needs nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torchvision
from torch import Tensor, nn

from .ops.boxes import cxcywh_to_xyxy
from .postprocess import arange_like, decode, decode_boxes
from .structures import HeadOutputs

if TYPE_CHECKING:
    from .weights import CheckpointInfo

logger = logging.getLogger(__name__)

LAYOUTS = ("decoded", "raw", "nms")
DEFAULT_OPSET = 18  # the dynamo exporter's native opset; onnxruntime >= 1.14 runs it fully
TORCHSCRIPT_EXTRA = "yoloxdet.json"  # name of the metadata entry inside a TorchScript archive
PREPROCESSING = {
    "color": "BGR",
    "range": "0-255 float32, no mean/std",
    "layout": "NCHW",
    "resize": "letterbox: scale r = min(H/h, W/w), cv2 INTER_LINEAR, pasted top-left",
    "pad_value": 114,
    "boxes_to_original": "divide by r (no offset: padding is bottom/right)",
}


@dataclass(frozen=True)
class ExportMetadata:
    """What a runtime needs to use an exported model correctly, stored as strings inside the file."""

    model_name: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]  # (h, w) default letterbox size
    output_layout: str = "decoded"  # "decoded", "raw" or "nms" (see module docstring)
    conf_threshold: float = 0.0  # score filter inside the graph ("nms" layout only)
    nms_iou_threshold: float = 0.0  # NMS inside the graph ("nms" layout only)
    strides: tuple[int, ...] = (8, 16, 32)
    head: str = "decoupled"
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(PREPROCESSING))
    yoloxdet_version: str = ""

    def to_props(self) -> dict[str, str]:
        """Flat string key/values, as ONNX ``metadata_props`` hold them."""
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str | Path) -> ExportMetadata:
        """Parse :meth:`to_props` output; a missing or malformed entry raises ``ValueError`` naming ``source``."""
        try:
            meta = cls(
                model_name=props["model_name"],
                class_names=tuple(json.loads(props["class_names"])),
                input_size=_pair(json.loads(props["input_size"])),
                output_layout=props.get("output_layout", "decoded"),
                conf_threshold=float(props.get("conf_threshold", 0.0)),
                nms_iou_threshold=float(props.get("nms_iou_threshold", 0.0)),
                strides=tuple(int(s) for s in json.loads(props.get("strides", "[8, 16, 32]"))),
                head=props.get("head", "decoupled"),
                preprocessing=json.loads(props.get("preprocessing", "{}")),
                yoloxdet_version=props.get("yoloxdet_version", ""),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{source}: bad yoloxdet export metadata ({type(exc).__name__}: {exc})") from None
        if meta.output_layout not in LAYOUTS:
            raise ValueError(f"{source}: unknown output_layout {meta.output_layout!r}; expected one of {LAYOUTS}")
        return meta

    def checkpoint_info(self) -> CheckpointInfo:
        from .weights import CheckpointInfo

        return CheckpointInfo(
            self.model_name, len(self.class_names), self.class_names, self.input_size, head=self.head
        )


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


def _cells(size: int | torch.SymInt, stride: int) -> int | torch.SymInt:
    # ceil division, written with // so it stays symbolic under torch.export
    return (size + stride - 1) // stride


def with_input_grid(outputs: HeadOutputs, height: int | torch.SymInt, width: int | torch.SymInt) -> HeadOutputs:
    """``outputs`` with feature sizes derived from the input size, which stay symbolic in an exported graph."""
    sizes = tuple((_cells(height, s), _cells(width, s)) for s in outputs.strides)
    return outputs._replace(feature_sizes=sizes)


def raw_layout(outputs: HeadOutputs) -> Tensor:
    """[B, A, 5 + C] official export layout: raw ``tx, ty, tw, th``, sigmoid(obj), sigmoid(cls)."""
    return torch.cat([outputs.box_raw, outputs.obj_logits.sigmoid()[..., None], outputs.cls_logits.sigmoid()], -1)


def decode_raw_layout(raw: Tensor, strides: Sequence[int], input_hw: tuple[int, int]) -> Tensor:
    """Decode the boxes of a raw-layout output (official ONNX files) into the ``decode`` layout."""
    outputs = HeadOutputs(raw[..., :4], raw[..., 4], raw[..., 5:], tuple(strides), ())
    outputs = with_input_grid(outputs, *input_hw)
    return torch.cat([decode_boxes(outputs), raw[..., 4:]], dim=-1)


def nms_detections(decoded: Tensor, conf_threshold: float, nms_iou_threshold: float) -> Tensor:
    """[N, 7] detections of the whole batch: (image index, x1, y1, x2, y2, score, class), as ``postprocess``.

    Written without Python branches on data so that it exports: one ``nms`` over all images and classes, with the
    boxes of each (image, class) group shifted apart, which is what ``batched_nms`` does per image.
    """
    batch, anchors, _ = decoded.shape
    num_classes = decoded.shape[2] - 5
    boxes = cxcywh_to_xyxy(decoded[..., :4])  # [B, A, 4]
    class_conf, class_ids = decoded[..., 5:].max(dim=-1)  # [B, A]
    scores = decoded[..., 4] * class_conf
    image_ids = arange_like(batch, decoded, torch.long)[:, None].expand(batch, anchors)
    # the shift is taken over all boxes before filtering, so it exists even when nothing passes the filter
    shift = boxes.abs().flatten().amax(dim=0) + 1
    keep = (scores >= conf_threshold).reshape(-1)
    boxes, scores = boxes.reshape(-1, 4)[keep], scores.reshape(-1)[keep]
    class_ids, image_ids = class_ids.reshape(-1)[keep], image_ids.reshape(-1)[keep]
    groups = (image_ids * num_classes + class_ids).to(boxes.dtype)
    kept = torchvision.ops.nms(boxes + (groups * shift)[:, None], scores, nms_iou_threshold)
    columns = [image_ids[kept, None].to(boxes.dtype), boxes[kept], scores[kept, None], class_ids[kept, None]]
    return torch.cat([c.to(boxes.dtype) for c in columns], dim=1)


class ExportWrapper(nn.Module):
    """``images -> [B, A, 5 + C]`` (decoded or raw layout) or ``[N, 7]`` detections (``nms``); what gets exported."""

    def __init__(
        self, model: nn.Module, layout: str = "decoded", conf_threshold: float = 0.25, nms_iou_threshold: float = 0.45
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown output layout {layout!r}; expected one of {LAYOUTS}")
        self.model = model
        self.layout = layout
        self.conf_threshold = conf_threshold
        self.nms_iou_threshold = nms_iou_threshold

    def forward(self, images: Tensor) -> Tensor:
        outputs = with_input_grid(self.model(images), images.shape[2], images.shape[3])
        if self.layout == "raw":
            return raw_layout(outputs)
        if self.layout == "nms":
            return nms_detections(decode(outputs), self.conf_threshold, self.nms_iou_threshold)
        return decode(outputs)

    @classmethod
    def for_metadata(cls, model: nn.Module, metadata: ExportMetadata) -> ExportWrapper:
        return cls(model, metadata.output_layout, metadata.conf_threshold, metadata.nms_iou_threshold).eval()


def _atomic_write(path: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(temp_path)`` on a temp file beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _example_input(model: nn.Module, input_size: tuple[int, int], batch: int) -> Tensor:
    param = next(model.parameters())
    # 114 is the letterbox pad value; any values work, the graph does not depend on them
    return torch.full((batch, 3, *input_size), 114.0, device=param.device, dtype=param.dtype)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    metadata: ExportMetadata,
    *,
    dynamic_batch: bool = True,
    dynamic_size: bool = True,
    opset: int = DEFAULT_OPSET,
    simplify: bool = False,
) -> Path:
    """Write ``model`` as ONNX (input ``images``, output ``output``) with ``metadata`` in ``metadata_props``.

    Args:
        model: a YOLOX returning ``HeadOutputs`` (fused or not); exported in eval mode, left unchanged.
        metadata: names, default input size, ``output_layout`` ("decoded", "raw" or "nms") and NMS thresholds.
        dynamic_batch / dynamic_size: symbolic batch / height and width (multiples of 32). A dynamic size makes
            export several times slower (symbolic shape reasoning), not the exported model.
        simplify: run onnxslim on the result (constant folding, fusions).
    """
    import onnx

    path = Path(path)
    wrapper = ExportWrapper.for_metadata(model, metadata)
    # batch 2: torch.export specialises size-1 dims, which would make the batch static
    example = _example_input(model, metadata.input_size, 2 if dynamic_batch else 1)
    dims: dict[int, Any] = {}
    if dynamic_batch:
        dims[0] = torch.export.Dim("batch", min=1, max=4096)
    if dynamic_size:
        dims[2] = dims[3] = torch.export.Dim.DYNAMIC
    was_training = model.training
    model.eval()
    try:
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=["images"],
            output_names=["output"],
            dynamic_shapes={"images": dims} if dims else None,
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    finally:
        model.train(was_training)
    proto = program.model_proto
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    _name_dims(proto, dynamic_batch)
    for key, value in metadata.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "yoloxdet"
    return _atomic_write(path, lambda tmp: onnx.save(proto, tmp))


def _name_dims(proto: Any, dynamic_batch: bool) -> None:
    """Give the symbolic dims readable names (the exporter's are ``s0``-style)."""
    names = {0: "batch", 2: "height", 3: "width"}
    for index, dim in enumerate(proto.graph.input[0].type.tensor_type.shape.dim):
        if dim.dim_param and index in names:
            dim.dim_param = names[index]
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    if dynamic_batch and out_dims and out_dims[0].dim_param:
        out_dims[0].dim_param = "batch"
    if len(out_dims) > 1 and out_dims[1].dim_param:
        out_dims[1].dim_param = "anchors"


def export_torchscript(model: nn.Module, path: str | Path, metadata: ExportMetadata) -> Path:
    """Write a traced TorchScript archive (dynamic batch and size) with ``metadata`` as an extra file."""
    path = Path(path)
    wrapper = ExportWrapper.for_metadata(model, metadata)
    example = _example_input(model, metadata.input_size, 1)
    was_training = model.training
    model.eval()
    try:
        # TorchScript is deprecated upstream but still what many C++/mobile runtimes load; the tracer's
        # int(shape) warning is from the head's feature_sizes, which the wrapper replaces by traced sizes
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
            extra = {TORCHSCRIPT_EXTRA: json.dumps(metadata.to_props())}
            return _atomic_write(path, lambda tmp: torch.jit.save(traced, tmp, _extra_files=extra))
    finally:
        model.train(was_training)


def read_onnx_metadata(path: str | Path) -> ExportMetadata | None:
    """The :class:`ExportMetadata` of a yoloxdet ONNX file, or None for other files (e.g. official exports)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError; report it on one line
        raise ValueError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    return ExportMetadata.from_props(props, path) if "model_name" in props and "class_names" in props else None
