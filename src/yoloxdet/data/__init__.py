"""Datasets (COCO JSON, Pascal VOC XML, YOLO txt), the official augmentation pipeline, loaders and data checks.

Typical training use::

    spec = load_dataset_spec("data.yaml")
    dataset = checked_dataset(spec, "train", cache_dir="runs/.data-checks")  # checks once per content hash
    loader = build_train_loader(dataset, batch_size=16, input_size=(640, 640), augment=resolved, seed=0)
    loader.set_epoch(epoch, mosaic=True)  # False for the no-aug phase
"""

import importlib
from typing import Any

# name -> module; imported on first use so that ``yoloxdet.data.transforms`` (used for inference) stays light
_EXPORTS = {
    "ResolvedAugment": "augment", "resolve_augment": "augment",
    "check_split": "checks", "checked_dataset": "checks",
    "DetectionDataset": "datasets", "Sample": "datasets", "build_dataset": "datasets",
    "TrainLoader": "loader", "ValLoader": "loader", "build_train_loader": "loader", "build_val_loader": "loader",
    "DatasetSpec": "spec", "DatasetSpecError": "spec", "load_dataset_spec": "spec",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'yoloxdet.data' has no attribute '{name}'")
    return getattr(importlib.import_module(f"yoloxdet.data.{_EXPORTS[name]}"), name)
