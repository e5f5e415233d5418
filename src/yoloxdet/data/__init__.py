"""Datasets (COCO JSON, Pascal VOC XML, YOLO txt), the official augmentation pipeline, loaders and data checks.

Typical training use::

    spec = load_dataset_spec("data.yaml")
    dataset = checked_dataset(spec, "train", cache_dir="runs/.data-checks")  # checks once per content hash
    loader = build_train_loader(dataset, batch_size=16, input_size=(640, 640), augment=resolved, seed=0)
    loader.set_epoch(epoch, mosaic=True)  # False for the no-aug phase
"""

from yoloxdet.data.augment import ResolvedAugment, resolve_augment
from yoloxdet.data.checks import check_split, checked_dataset
from yoloxdet.data.datasets import DetectionDataset, Sample, build_dataset
from yoloxdet.data.loader import TrainLoader, build_train_loader, build_val_loader
from yoloxdet.data.spec import DatasetSpec, DatasetSpecError, load_dataset_spec

__all__ = [
    "DatasetSpec",
    "DatasetSpecError",
    "DetectionDataset",
    "ResolvedAugment",
    "Sample",
    "TrainLoader",
    "build_dataset",
    "build_train_loader",
    "build_val_loader",
    "check_split",
    "checked_dataset",
    "load_dataset_spec",
    "resolve_augment",
]
