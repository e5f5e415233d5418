"""The dataset description file: one YAML for COCO JSON, Pascal VOC XML and YOLO txt datasets.

Examples (paths are relative to ``root``, which defaults to the YAML file's folder)::

    format: coco                        # COCO JSON
    train: {images: train2017, annotations: annotations/instances_train2017.json}
    val: {images: val2017, annotations: annotations/instances_val2017.json}

    format: voc                         # Pascal VOC; one or more (folder, image set) pairs per split
    root: VOCdevkit
    train: [{dir: VOC2007, set: trainval}, {dir: VOC2012, set: trainval}]
    val: {dir: VOC2007, set: test}
    keep_difficult: true                # official default
    names: [aeroplane, bicycle, ...]    # optional: else the sorted names found in the XML files

    path: ../datasets/coco8             # YOLO txt, the ultralytics data YAML as is (format: yolo is implied)
    train: images/train                 # a folder of images, a .txt list of images, or a list of either
    val: images/val
    names: {0: person, 1: bicycle}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FORMATS = ("coco", "voc", "yolo")


class DatasetSpecError(ValueError):
    """The dataset description is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class SplitSource:
    """One source of images for a split: ``images`` (folder or list file) plus, per format,
    ``annotations`` (COCO JSON) or ``image_set`` (VOC ``ImageSets/Main/<set>.txt``)."""

    images: Path
    annotations: Path | None = None
    image_set: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    format: str
    root: Path
    splits: Mapping[str, tuple[SplitSource, ...]]
    names: tuple[str, ...] | None  # None: taken from the annotations (COCO categories, VOC XML names)
    keep_difficult: bool = True
    source: Path | None = None  # the YAML file, for messages

    def split(self, name: str) -> tuple[SplitSource, ...]:
        if name not in self.splits:
            raise DatasetSpecError(f"{self.source}: no '{name}' split (has {sorted(self.splits)})")
        return self.splits[name]


def load_dataset_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a dataset description YAML. Errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset description not found")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetSpecError(f"{path}: cannot read dataset description: {exc}") from None
    if not isinstance(data, Mapping):
        raise DatasetSpecError(f"{path}: expected a mapping with format, train, val, names")
    return parse_dataset_spec(data, base=path.parent, source=path)


def parse_dataset_spec(data: Mapping[str, Any], base: Path, source: Path | None = None) -> DatasetSpec:
    """Build a :class:`DatasetSpec` from an already-parsed mapping; relative paths resolve against
    ``base``."""
    where = source or "dataset description"
    fmt = str(data.get("format", "yolo")).lower()
    if fmt not in FORMATS:
        raise DatasetSpecError(f"{where}: format '{fmt}' is not one of {list(FORMATS)}")
    known = {"format", "root", "path", "train", "val", "test", "names", "nc", "keep_difficult", "download"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DatasetSpecError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    root = Path(data.get("root", data.get("path", ".")) or ".")
    root = root if root.is_absolute() else (base / root)
    splits = {}
    for split in ("train", "val", "test"):
        if data.get(split) is not None:
            splits[split] = _parse_split(fmt, data[split], root, f"{where}: '{split}'")
    if not splits:
        raise DatasetSpecError(f"{where}: needs at least a 'train' or 'val' entry")
    names = _parse_names(data.get("names"), f"{where}: 'names'")
    if names is None and fmt == "yolo":
        raise DatasetSpecError(f"{where}: 'names' is required for YOLO txt datasets")
    if "nc" in data and names is not None and int(data["nc"]) != len(names):
        raise DatasetSpecError(f"{where}: 'nc' is {data['nc']} but 'names' has {len(names)} entries")
    keep_difficult = data.get("keep_difficult", True)
    if not isinstance(keep_difficult, bool):
        raise DatasetSpecError(f"{where}: 'keep_difficult' must be true or false")
    return DatasetSpec(fmt, root, splits, names, keep_difficult, source)


def _parse_names(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        try:
            keys = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            raise DatasetSpecError(f"{where}: mapping keys must be class ids 0..N-1") from None
        if keys != list(range(len(keys))):
            raise DatasetSpecError(f"{where}: class ids must be 0..{len(keys) - 1} without gaps, got {keys}")
        lookup = {int(k): v for k, v in value.items()}
        value = [lookup[k] for k in keys]
    if not isinstance(value, list | tuple) or not value:
        raise DatasetSpecError(f"{where}: expected a non-empty list of class names or an id -> name mapping")
    names = tuple(str(v) for v in value)
    if len(set(names)) != len(names):
        raise DatasetSpecError(f"{where}: duplicate class names")
    return names


def _parse_split(fmt: str, value: Any, root: Path, where: str) -> tuple[SplitSource, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(
        _parse_source(fmt, item, root, f"{where}[{i}]" if len(items) > 1 else where)
        for i, item in enumerate(items)
    )


def _parse_source(fmt: str, item: Any, root: Path, where: str) -> SplitSource:
    def resolve(p: Any) -> Path:
        p = Path(str(p))
        return p if p.is_absolute() else root / p

    if fmt == "yolo":
        if not isinstance(item, str | Path):
            raise DatasetSpecError(f"{where}: expected an image folder or a .txt list of images")
        return SplitSource(images=resolve(item))
    if not isinstance(item, Mapping):
        keys = "images, annotations" if fmt == "coco" else "dir, set"
        raise DatasetSpecError(f"{where}: expected a mapping with {keys}")
    if fmt == "coco":
        missing = [k for k in ("images", "annotations") if k not in item]
        if missing:
            raise DatasetSpecError(f"{where}: missing key(s) {missing}")
        return SplitSource(images=resolve(item["images"]), annotations=resolve(item["annotations"]))
    if "dir" not in item or "set" not in item:
        raise DatasetSpecError(f"{where}: VOC entries need 'dir' (e.g. VOC2007) and 'set' (e.g. trainval)")
    return SplitSource(images=resolve(item["dir"]), image_set=str(item["set"]))
