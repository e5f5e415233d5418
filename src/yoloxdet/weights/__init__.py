"""Loading weights: our checkpoint format, the trainer's checkpoints, official ``.pth`` and ``.onnx`` files,
the release download cache, BN re-calibration of BN-folded imports and the COCO class names.

``loading`` holds the formats and ``load_model``; ``onnx_import`` rebuilds a model from an official ONNX file;
``bn_calibration`` re-estimates BN after such an import; ``coco_classes`` names the 80 COCO classes.
"""

from .bn_calibration import calibrate_batchnorm
from .coco_classes import COCO_CLASSES
from .loading import (
    FORMAT,
    TRAIN_FORMAT,
    CheckpointInfo,
    WeightsDownloadError,
    fetch_official,
    load_model,
    load_state_dict_into,
    read_checkpoint,
    save_atomic,
    save_checkpoint,
    weights_cache_dir,
)
from .onnx_import import import_onnx

__all__ = [
    "COCO_CLASSES",
    "FORMAT",
    "TRAIN_FORMAT",
    "CheckpointInfo",
    "WeightsDownloadError",
    "calibrate_batchnorm",
    "fetch_official",
    "import_onnx",
    "load_model",
    "load_state_dict_into",
    "read_checkpoint",
    "save_atomic",
    "save_checkpoint",
    "weights_cache_dir",
]
