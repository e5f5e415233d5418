"""Export to ONNX / TorchScript with the preprocessing recorded inside (runtimes:
:mod:`yoloxdet.inference.backends`).

The model stays raw (:class:`~yoloxdet.structures.HeadOutputs`); :class:`ExportWrapper` adds decoding on top,
so the exported graph returns the official inference layout ``[B, A, 5 + C]`` (cxcywh boxes in input pixels,
sigmoid obj, sigmoid cls). Other output layouts:

- ``raw``: the official ``tools/export_onnx.py`` default (raw ``tx, ty, tw, th``, then the sigmoids; reference
  §7.1).
- ``nms``: score filter and class-aware NMS inside the graph, ``[N, 7]`` rows
  ``(image index, x1, y1, x2, y2, score, class)`` with the thresholds recorded in the metadata.

The anchor grid is built from the input's (symbolic) height and width, so one file serves every batch size and
every input size that is a multiple of 32. ONNX export uses the maintained
``torch.onnx.export(..., dynamo=True)`` path (it needs ``onnxscript``); it is slow on CPU (~20 s for a fixed
size, several times that with a dynamic size, because of symbolic shape reasoning) but the exported model is
not. Each file carries :class:`ExportMetadata` (``metadata_props`` in ONNX, an extra file in TorchScript),
which the backends read back, so ``Detector.from_checkpoint("model.onnx")`` needs nothing else.
"""

from .graph import ExportWrapper, decode_raw_layout, nms_detections, raw_layout, with_input_grid
from .metadata import LAYOUTS, PREPROCESSING, TORCHSCRIPT_EXTRA, ExportMetadata, read_onnx_metadata
from .writers import DEFAULT_OPSET, export_onnx, export_torchscript

__all__ = [
    "DEFAULT_OPSET",
    "LAYOUTS",
    "PREPROCESSING",
    "TORCHSCRIPT_EXTRA",
    "ExportMetadata",
    "ExportWrapper",
    "decode_raw_layout",
    "export_onnx",
    "export_torchscript",
    "nms_detections",
    "raw_layout",
    "read_onnx_metadata",
    "with_input_grid",
]
