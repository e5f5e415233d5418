"""Readers for COCO JSON, Pascal VOC XML and YOLO txt annotations -> :class:`Record` lists.

Readers never raise on bad annotations: a bad box or file becomes an :class:`Issue` naming the file and the
line / annotation id, the bad part is dropped, and everything good around it is kept. Images without boxes are
kept as negatives. Only a broken dataset description or an unreadable annotation file raises.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from yoloxdet.data.records import Issue, Record, box_problem, clip_box, empty_boxes, is_outside
from yoloxdet.data.spec import DatasetSpec, DatasetSpecError, SplitSource
from yoloxdet.io import IMAGE_SUFFIXES

EXIF_ORIENTATION = 0x0112


@dataclass
class ReadResult:
    records: list[Record]
    names: tuple[str, ...]
    category_ids: tuple[int, ...]  # contiguous index -> dataset category id
    issues: list[Issue] = field(default_factory=list)
    coco_gt: dict[str, Any] | None = None  # the original COCO dict (crowd boxes included) for evaluation


def read_split(spec: DatasetSpec, split: str) -> ReadResult:
    """Read every source of ``split`` with the reader for ``spec.format``."""
    sources = spec.split(split)
    if spec.format == "coco":
        if len(sources) != 1:
            raise DatasetSpecError(f"{spec.source}: COCO splits take one images/annotations pair")
        return read_coco(sources[0], spec.names)
    if spec.format == "voc":
        return read_voc(sources, spec.names, keep_difficult=spec.keep_difficult)
    assert spec.names is not None
    return read_yolo(sources, spec.names)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as decoded with EXIF orientation applied, read from the header only."""
    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


# ---------------------------------------------------------------- COCO
def read_coco(source: SplitSource, names: tuple[str, ...] | None = None) -> ReadResult:
    """COCO JSON as official: category ids mapped through their sorted order, crowd boxes skipped, boxes
    clipped to the image (``x1 = max(0, x)``, ``x2 = min(W, x1 + max(0, w))``), ``area <= 0`` dropped."""
    ann_path = source.annotations
    assert ann_path is not None
    try:
        gt = json.loads(Path(ann_path).read_text())
    except (OSError, ValueError) as exc:
        raise DatasetSpecError(f"{ann_path}: cannot read COCO annotations: {exc}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise DatasetSpecError(f"{ann_path}: not a COCO detection file (no '{key}' list)")
    category_ids = tuple(sorted(int(c["id"]) for c in gt["categories"]))
    by_id = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    file_names = tuple(by_id[i] for i in category_ids)
    if names is not None and tuple(names) != file_names:
        raise DatasetSpecError(f"{ann_path}: category names {file_names[:3]}... differ from the description's 'names'")
    index_of = {cid: i for i, cid in enumerate(category_ids)}
    issues: list[Issue] = []
    records: dict[int, Record] = {}
    for im in gt["images"]:
        image_id = int(im["id"])
        path = Path(source.images) / im.get("file_name", f"{image_id:012}.jpg")
        if not path.is_file():
            issues.append(Issue(path, "image file is missing", f"image id {image_id}"))
            continue
        records[image_id] = Record(path, image_id, int(im["width"]), int(im["height"]), *empty_boxes(),
                                   label_file=Path(ann_path))
    boxes: dict[int, list] = {i: [] for i in records}
    for ann in gt["annotations"]:
        _coco_box(ann, records, index_of, boxes, issues, Path(ann_path))
    for image_id, rec in records.items():
        if boxes[image_id]:
            rec.boxes_xyxy = np.asarray([b for b, _ in boxes[image_id]], np.float32)
            rec.labels = np.asarray([c for _, c in boxes[image_id]], np.int64)
    return ReadResult(list(records.values()), file_names, category_ids, issues, gt)


def _coco_box(ann: dict, records: dict[int, Record], index_of: dict[int, int], out: dict[int, list],
              issues: list[Issue], ann_path: Path) -> None:
    where = f"annotation id {ann.get('id')}"
    image_id = int(ann.get("image_id", -1))
    if image_id not in records:
        if image_id not in out:  # a missing image file is already reported once
            issues.append(Issue(ann_path, f"refers to unknown image id {image_id}", where))
        return
    if ann.get("iscrowd", 0):
        return  # crowd regions are for evaluation only (official getAnnIds(iscrowd=False))
    rec = records[image_id]
    cid = ann.get("category_id")
    if cid not in index_of:
        issues.append(Issue(ann_path, f"unknown category id {cid}", where))
        return
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError):
        issues.append(Issue(ann_path, f"malformed bbox {ann.get('bbox')!r}", where))
        return
    raw = (x, y, x + w, y + h)
    problem = box_problem(raw)
    if problem is None and float(ann.get("area", w * h)) <= 0:
        problem = f"area {ann.get('area')} <= 0"
    if problem:
        issues.append(Issue(ann_path, f"{problem}; dropped", where))
        return
    if is_outside(raw, rec.width, rec.height):
        issues.append(Issue(ann_path, f"box {[round(v, 1) for v in raw]} reaches outside the "
                                      f"{rec.width}x{rec.height} image; clipped", where, "warning"))
    x1, y1 = max(0.0, x), max(0.0, y)
    box = (x1, y1, min(float(rec.width), x1 + max(0.0, w)), min(float(rec.height), y1 + max(0.0, h)))
    if box[2] <= box[0] or box[3] <= box[1]:
        issues.append(Issue(ann_path, "box lies entirely outside the image; dropped", where))
        return
    out[image_id].append((box, index_of[cid]))


# ---------------------------------------------------------------- Pascal VOC
def read_voc(sources: Iterable[SplitSource], names: tuple[str, ...] | None, keep_difficult: bool = True) -> ReadResult:
    """Pascal VOC: ``<dir>/Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, ids from ``ImageSets/Main/<set>.txt``.

    Coordinates become 0-based as official (``int(float(v)) - 1``). Without ``names`` the classes are the sorted
    names found in the XML files.
    """
    issues: list[Issue] = []
    parsed = []
    for source in sources:
        list_file = Path(source.images) / "ImageSets" / "Main" / f"{source.image_set}.txt"
        try:
            ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise DatasetSpecError(f"{list_file}: cannot read VOC image set: {exc.strerror}") from None
        for stem in ids:
            xml = Path(source.images) / "Annotations" / f"{stem}.xml"
            item = _parse_voc_xml(xml, Path(source.images) / "JPEGImages", keep_difficult, issues)
            if item is not None:
                parsed.append(item)
    if names is None:
        names = tuple(sorted({obj[0] for item in parsed for obj in item[3]}))
    index_of = {n: i for i, n in enumerate(names)}
    records = []
    for image_path, xml, (width, height), objects in parsed:
        boxes, labels, difficult = [], [], []
        for name, box, where, is_difficult in objects:
            if name not in index_of:
                issues.append(Issue(xml, f"unknown class name '{name}' (not in names)", where))
                continue
            if _check_box(box, width, height, xml, where, issues):
                boxes.append(clip_box(box, width, height))
                labels.append(index_of[name])
                difficult.append(is_difficult)
        rec = Record(image_path, len(records), width, height, *empty_boxes(), label_file=xml,
                     extra={"difficult": np.asarray(difficult, bool)})
        if boxes:
            rec.boxes_xyxy, rec.labels = np.asarray(boxes, np.float32), np.asarray(labels, np.int64)
        records.append(rec)
    return ReadResult(records, tuple(names), tuple(range(len(names))), issues)


def _parse_voc_xml(xml: Path, image_dir: Path, keep_difficult: bool, issues: list[Issue]) -> tuple | None:
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError) as exc:
        issues.append(Issue(xml, f"unreadable annotation file ({exc}); image skipped"))
        return None
    file_name = root.findtext("filename") or f"{xml.stem}.jpg"
    image_path = image_dir / file_name
    if not image_path.is_file():
        image_path = image_dir / f"{xml.stem}.jpg"
    if not image_path.is_file():
        issues.append(Issue(image_path, "image file is missing", f"from {xml.name}"))
        return None
    try:
        width, height = int(root.findtext("size/width") or 0), int(root.findtext("size/height") or 0)
        if width <= 0 or height <= 0:
            width, height = image_size(image_path)
    except (ValueError, OSError, UnidentifiedImageError):
        issues.append(Issue(image_path, "cannot read the image size; image skipped"))
        return None
    objects = []
    for k, obj in enumerate(root.iter("object")):
        where = f"object {k}"
        try:
            is_difficult = int(obj.findtext("difficult") or 0) == 1
            if is_difficult and not keep_difficult:
                continue
            name = (obj.findtext("name") or "").strip()
            bb = obj.find("bndbox")
            box = tuple(float(int(float(bb.findtext(t)))) - 1 for t in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            issues.append(Issue(xml, "malformed <object> (name or bndbox missing or not numeric)", where))
            continue
        objects.append((name, box, where, is_difficult))
    return image_path, xml, (width, height), objects


def _check_box(box: tuple, width: int, height: int, path: Path, where: str, issues: list[Issue]) -> bool:
    problem = box_problem(box)
    if problem:
        issues.append(Issue(path, f"{problem}; dropped", where))
        return False
    if is_outside(box, width, height):
        issues.append(Issue(path, f"box {[round(v, 1) for v in box]} reaches outside the {width}x{height} "
                                  "image; clipped", where, "warning"))
    return True


# ---------------------------------------------------------------- YOLO txt
def list_images(source: Path) -> list[Path]:
    """A folder (searched recursively) or a .txt file listing images (relative to the file's folder)."""
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if source.suffix == ".txt" and source.is_file():
        lines = [ln.strip() for ln in source.read_text().splitlines() if ln.strip()]
        return [p if p.is_absolute() else source.parent / p for p in map(Path, lines)]
    raise DatasetSpecError(f"{source}: image folder or list file not found")


def yolo_label_path(image: Path) -> Path:
    """The ultralytics convention: the last ``images`` folder in the path becomes ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo(sources: Iterable[SplitSource], names: tuple[str, ...]) -> ReadResult:
    """YOLO txt: one ``cls cx cy w h`` row per box, normalised to the image size; a missing or empty label file
    means a negative image. Polygon rows (``cls x1 y1 x2 y2 ...``) become their bounding box."""
    issues: list[Issue] = []
    records: list[Record] = []
    for source in sources:
        for image in list_images(Path(source.images)):
            if not image.is_file():
                issues.append(Issue(image, "image file is missing"))
                continue
            try:
                width, height = image_size(image)
            except (OSError, UnidentifiedImageError, SyntaxError):
                issues.append(Issue(image, "not a readable image (corrupt or not an image file); skipped"))
                continue
            label_file = yolo_label_path(image)
            rec = Record(image, len(records), width, height, *empty_boxes(), label_file=label_file)
            if label_file.is_file():
                rec.boxes_xyxy, rec.labels = _parse_yolo_labels(label_file, width, height, len(names), issues)
            records.append(rec)
    return ReadResult(records, tuple(names), tuple(range(len(names))), issues)


def _parse_yolo_labels(path: Path, width: int, height: int, num_classes: int,
                       issues: list[Issue]) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(Issue(path, f"unreadable label file ({type(exc).__name__}); image used without boxes"))
        return empty_boxes()
    if not text.strip():
        issues.append(Issue(path, "empty label file; image used as a negative", severity="warning"))
        return empty_boxes()
    boxes, labels = [], []
    for line_no, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {line_no}"
        parsed = _yolo_row(fields, num_classes)
        if isinstance(parsed, str):
            issues.append(Issue(path, f"{parsed}: {line.strip()[:60]!r}", where))
            continue
        cls, (cx, cy, w, h) = parsed
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        if _check_box(box, width, height, path, where, issues):
            boxes.append(clip_box(box, width, height))
            labels.append(cls)
    if not boxes:
        return empty_boxes()
    return np.asarray(boxes, np.float32), np.asarray(labels, np.int64)


def _yolo_row(fields: list[str], num_classes: int) -> tuple[int, tuple[float, ...]] | str:
    """``(class, (cx, cy, w, h))`` normalised, or the reason the row is malformed."""
    if len(fields) < 5 or (len(fields) > 5 and len(fields) % 2 == 0):
        return f"expected 'cls cx cy w h' (5 columns) or a polygon, got {len(fields)} columns"
    try:
        cls_f = float(fields[0])
        values = [float(v) for v in fields[1:]]
    except ValueError:
        return "non-numeric value"
    if not cls_f.is_integer():
        return f"class id {fields[0]} is not an integer"
    cls = int(cls_f)
    if not 0 <= cls < num_classes:
        return f"class id {cls} out of range 0..{num_classes - 1}"
    if len(values) > 4:  # polygon -> its bounding box
        xs, ys = values[0::2], values[1::2]
        values = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
    if any(math.isnan(v) for v in values):
        return "NaN coordinate"
    return cls, tuple(values)
