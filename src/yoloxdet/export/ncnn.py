"""ncnn (``.param`` + ``.bin``), the format of YOLOX's official mobile demos, converted by pnnx from a trace.

The graph is the official raw layout ``[A, 5 + C]`` at a fixed input size (``tx, ty, tw, th``, sigmoid obj,
sigmoid cls): ncnn runs one image at a time without a batch axis, and the decode (grid, ``exp``, strides) is
done by :func:`~yoloxdet.export.decode_raw_layout` in the backend, as the official ncnn demo does it in C++.
Weights are stored fp32 (pnnx's default is fp16) so that outputs stay within 1e-3 of PyTorch. ncnn files have
no metadata slot: :class:`~yoloxdet.export.ExportMetadata` goes to a sidecar ``.json`` beside the ``.param``.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from pathlib import Path

import pnnx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..io import write_bytes_atomic, write_json_atomic
from ..models.blocks import Focus
from .graph import ExportWrapper
from .metadata import ExportMetadata

# Focus concatenates the (row, col) offsets (0,0), (1,0), (0,1), (1,1); pixel_unshuffle orders them
# row * 2 + col
_UNSHUFFLE_SLOT = (0, 2, 1, 3)


class UnshuffleFocus(nn.Module):
    """:class:`~yoloxdet.models.blocks.Focus` as ``pixel_unshuffle`` and the same conv with its input channels
    reordered: equal outputs, and ncnn has the space-to-depth layer but no strided slice."""

    def __init__(self, focus: Focus) -> None:
        super().__init__()
        self.conv = copy.deepcopy(focus.conv)
        weight = self.conv.conv.weight.detach()
        channels = weight.shape[1] // 4
        order = torch.empty(weight.shape[1], dtype=torch.long)
        for block, slot in enumerate(_UNSHUFFLE_SLOT):
            order[torch.arange(channels) * 4 + slot] = block * channels + torch.arange(channels)
        self.conv.conv.weight = nn.Parameter(weight[:, order].clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pixel_unshuffle(x, 2))


def ncnn_ready(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every Focus replaced by :class:`UnshuffleFocus`."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Focus):
                setattr(parent, name, UnshuffleFocus(child))
    return model


def ncnn_paths(param: str | Path) -> tuple[Path, Path, Path]:
    """``(.param, .bin, .json)`` of an ncnn export named by its ``.param``."""
    param = Path(param)
    return param, param.with_suffix(".bin"), param.with_suffix(".json")


def export_ncnn(model: nn.Module, output: str | Path, metadata: ExportMetadata) -> Path:
    """Write ``model`` (BN folded or not) as ncnn ``output`` (``.param``) with ``.bin`` and ``.json`` beside
    it."""
    param, weights, sidecar = ncnn_paths(output)
    if param.suffix != ".param":
        raise ValueError(f"{param}: an ncnn model is named *.param (its weights go to *.bin beside it)")
    raw_metadata = ExportMetadata(
        **{**metadata.__dict__, "output_layout": "raw", "conf_threshold": 0.0, "nms_iou_threshold": 0.0}
    )
    wrapper = ExportWrapper(ncnn_ready(model), "raw").eval()
    example = torch.full((1, 3, *metadata.input_size), 114.0)
    with (
        tempfile.TemporaryDirectory(prefix="yoloxdet-ncnn-") as workdir,
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        # the tracer's int(shape) and deprecation notices: sizes are fixed in this format on purpose
        warnings.simplefilter("ignore")
        work = Path(workdir)
        pnnx.export(
            wrapper,
            str(work / "model.pt"),
            (example,),
            check_trace=False,
            fp16=False,
            pnnxparam=str(work / "model.pnnx.param"),
            pnnxbin=str(work / "model.pnnx.bin"),
            pnnxpy=str(work / "model_pnnx.py"),
            pnnxonnx=str(work / "model.pnnx.onnx"),
            ncnnparam=str(work / "model.ncnn.param"),
            ncnnbin=str(work / "model.ncnn.bin"),
            ncnnpy=str(work / "model_ncnn.py"),
        )
        produced = work / "model.ncnn.param"
        if not produced.is_file():
            raise RuntimeError(f"{param}: pnnx did not write an ncnn model (see its messages above)")
        io_names = _io_names(produced.read_text())
        write_json_atomic(
            sidecar, {**raw_metadata.to_props(), "ncnn_input": io_names[0], "ncnn_output": io_names[1]}
        )
        write_bytes_atomic(weights, (work / "model.ncnn.bin").read_bytes())
        write_bytes_atomic(param, produced.read_bytes())
    return param


def _io_names(param_text: str) -> tuple[str, str]:
    """The input blob (of the ``Input`` layer) and the last layer's output blob of an ncnn ``.param`` text."""
    layers = [line.split() for line in param_text.splitlines()[2:] if line.strip()]
    input_layer = next(layer for layer in layers if layer[0] == "Input")
    last = layers[-1]
    inputs, outputs = int(last[2]), int(last[3])
    return input_layer[4], last[4 + inputs + outputs - 1]


def read_ncnn_metadata(param: str | Path) -> tuple[ExportMetadata, str, str]:
    """The metadata and the input/output blob names from the ``.json`` beside an ncnn ``.param``."""
    param, _, sidecar = ncnn_paths(param)
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar}: the yoloxdet metadata of {param.name} is missing")
    try:
        props = json.loads(sidecar.read_text())
        names = props.pop("ncnn_input"), props.pop("ncnn_output")
    except (json.JSONDecodeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{sidecar}: bad yoloxdet ncnn metadata ({type(exc).__name__}: {exc})") from None
    return ExportMetadata.from_props(props, sidecar), *names
