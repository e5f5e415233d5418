"""What an exported file says about itself: :class:`ExportMetadata`, written by the exporters and read back by
the runtime backends (``metadata_props`` in ONNX, an extra file in TorchScript)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import CHOICES, DEFAULT_HEAD
from ..weights import CheckpointInfo

LAYOUTS = CHOICES["export.layout"]
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
    head: str = DEFAULT_HEAD
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(PREPROCESSING))
    yoloxdet_version: str = ""

    def to_props(self) -> dict[str, str]:
        """Flat string key/values, as ONNX ``metadata_props`` hold them."""
        return {
            key: value if isinstance(value, str) else json.dumps(value) for key, value in asdict(self).items()
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str | Path) -> ExportMetadata:
        """Parse :meth:`to_props` output; a missing or malformed entry raises ``ValueError`` naming
        ``source``."""
        try:
            meta = cls(
                model_name=props["model_name"],
                class_names=tuple(json.loads(props["class_names"])),
                input_size=_pair(json.loads(props["input_size"])),
                output_layout=props.get("output_layout", "decoded"),
                conf_threshold=float(props.get("conf_threshold", 0.0)),
                nms_iou_threshold=float(props.get("nms_iou_threshold", 0.0)),
                strides=tuple(int(s) for s in json.loads(props.get("strides", "[8, 16, 32]"))),
                head=props.get("head", DEFAULT_HEAD),
                preprocessing=json.loads(props.get("preprocessing", "{}")),
                yoloxdet_version=props.get("yoloxdet_version", ""),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(
                f"{source}: bad yoloxdet export metadata ({type(exc).__name__}: {exc})"
            ) from None
        if meta.output_layout not in LAYOUTS:
            raise ValueError(
                f"{source}: unknown output_layout {meta.output_layout!r}; expected one of {LAYOUTS}"
            )
        return meta

    def checkpoint_info(self) -> CheckpointInfo:
        return CheckpointInfo(
            self.model_name, len(self.class_names), self.class_names, self.input_size, head=self.head
        )


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


def read_onnx_metadata(path: str | Path) -> ExportMetadata | None:
    """The :class:`ExportMetadata` of a yoloxdet ONNX file, or None for other files (e.g. official
    exports)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError; report it on one line
        raise ValueError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    return (
        ExportMetadata.from_props(props, path) if "model_name" in props and "class_names" in props else None
    )
