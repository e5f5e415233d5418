"""Generated dataset fixtures in the three formats (imported by the tests/test_data_*.py modules)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

NAMES = ("cat", "dog", "bird")


@dataclass(frozen=True)
class Item:
    file_name: str
    size_wh: tuple[int, int]
    boxes_xyxy: tuple[tuple[int, int, int, int], ...]  # integer 0-based pixels
    labels: tuple[int, ...]


ITEMS = (
    Item("a.png", (64, 48), ((4, 6, 30, 40), (20, 10, 60, 30)), (0, 2)),
    Item("b.png", (50, 70), ((0, 0, 50, 70),), (1,)),
    Item("c.png", (40, 40), (), ()),  # a negative image
    Item("d.png", (80, 30), ((10, 5, 20, 25), (30, 2, 70, 28), (71, 0, 79, 9)), (2, 2, 0)),
)


def write_image(path: Path, size_wh: tuple[int, int], seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


def write_truncated_jpeg(path: Path, size_wh: tuple[int, int]) -> None:
    """A JPEG whose header is intact and whose pixel data is cut in half."""
    noise = np.random.default_rng(0).integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), noise, [cv2.IMWRITE_JPEG_QUALITY, 95])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def write_exif_rotated(path: Path) -> None:
    """A 30x20 JPEG with EXIF orientation 6 (decoded as 20x30)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path, exif=exif)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def write_coco(root: Path, items=ITEMS, names=NAMES, category_ids=(3, 7, 11)) -> Path:
    """Non-contiguous category ids on purpose; listed in a shuffled order."""
    images, annotations = [], []
    for k, item in enumerate(items):
        write_image(root / "images" / item.file_name, item.size_wh, k)
        images.append(
            {"id": 100 + k, "file_name": item.file_name, "width": item.size_wh[0], "height": item.size_wh[1]}
        )
        for box, label in zip(item.boxes_xyxy, item.labels):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 100 + k,
                    "category_id": category_ids[label],
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": c, "name": n} for c, n in reversed(list(zip(category_ids, names)))]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return write_yaml(
        root / "data.yaml",
        {"format": "coco", "train": {"images": "images", "annotations": "annotations/instances.json"}},
    )


def voc_xml(item: Item, names=NAMES, difficult=()) -> str:
    objects = "".join(
        f"<object><name>{names[label]}</name><difficult>{int(i in difficult)}</difficult><bndbox>"
        f"<xmin>{box[0] + 1}</xmin><ymin>{box[1] + 1}</ymin>"
        f"<xmax>{box[2] + 1}</xmax><ymax>{box[3] + 1}</ymax>"
        f"</bndbox></object>"
        for i, (box, label) in enumerate(zip(item.boxes_xyxy, item.labels))
    )
    return (
        f"<annotation><filename>{item.file_name}</filename><size><width>{item.size_wh[0]}</width>"
        f"<height>{item.size_wh[1]}</height><depth>3</depth></size>{objects}</annotation>"
    )


def write_voc(root: Path, items=ITEMS, names=NAMES, with_names: bool = True, difficult=()) -> Path:
    """VOC layout with 1-based coordinates in the XML; ``difficult`` marks object indices of the first
    image."""
    base = root / "VOC2007"
    (base / "Annotations").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for k, item in enumerate(items):
        write_image(base / "JPEGImages" / item.file_name, item.size_wh, k)
        stem = Path(item.file_name).stem
        (base / "Annotations" / f"{stem}.xml").write_text(voc_xml(item, names, difficult if k == 0 else ()))
    (base / "ImageSets" / "Main" / "trainval.txt").write_text(
        "\n".join(Path(i.file_name).stem for i in items) + "\n"
    )
    data = {"format": "voc", "train": {"dir": "VOC2007", "set": "trainval"}}
    if with_names:
        data["names"] = list(names)
    return write_yaml(root / "data.yaml", data)


def write_yolo(root: Path, items=ITEMS, names=NAMES) -> Path:
    """The ultralytics layout and data YAML (no ``format`` key, names as an id mapping)."""
    for k, item in enumerate(items):
        write_image(root / "images" / "train" / item.file_name, item.size_wh, k)
        w, h = item.size_wh
        rows = [
            f"{label} {(b[0] + b[2]) / 2 / w:.8f} {(b[1] + b[3]) / 2 / h:.8f} {(b[2] - b[0]) / w:.8f} "
            f"{(b[3] - b[1]) / h:.8f}"
            for b, label in zip(item.boxes_xyxy, item.labels)
        ]
        if rows:  # negatives get no label file, the common convention
            label = root / "labels" / "train" / f"{Path(item.file_name).stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("\n".join(rows) + "\n")
    return write_yaml(
        root / "data.yaml",
        {"path": ".", "train": "images/train", "val": "images/train", "names": dict(enumerate(names))},
    )
