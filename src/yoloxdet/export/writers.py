"""Writing ONNX and TorchScript files, atomically, with :class:`~yoloxdet.export.metadata.ExportMetadata`
inside."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ExportConfig
from ..io import atomic_path
from .graph import ExportWrapper
from .metadata import TORCHSCRIPT_EXTRA, ExportMetadata

DEFAULT_OPSET = ExportConfig.opset


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
        dynamic_batch / dynamic_size: symbolic batch / height and width (multiples of 32). A dynamic size
            makes export several times slower (symbolic shape reasoning), not the exported model.
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
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


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
            with atomic_path(path) as tmp:
                torch.jit.save(traced, str(tmp), _extra_files=extra)
            return path
    finally:
        model.train(was_training)
