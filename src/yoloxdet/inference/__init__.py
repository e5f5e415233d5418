"""Inference: :class:`Detector` (images in, :class:`Detections` out), the runtimes of exported files and the
result type. Score filter and NMS are ``yoloxdet.ops.nms``, shared with evaluation."""

from .api import Backend, Detector, TorchBackend
from .results import Detections
from .tiling import TileSpec

__all__ = ["Backend", "Detections", "Detector", "TileSpec", "TorchBackend"]
