"""Readers for COCO JSON, Pascal VOC XML and YOLO txt annotations -> :class:`Record` lists.

Readers never raise on bad annotations: a bad box or file becomes an :class:`Issue` naming the file and the
line / annotation id, the bad part is dropped, and everything good around it is kept. Images without boxes are
kept as negatives. Only a broken dataset description or an unreadable annotation file raises.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from PIL import Image, UnidentifiedImageError

from yoloxdet.data.index import RecordIndex, StringArray
from yoloxdet.data.records import Issue, Record, box_problem, clip_box, empty_boxes, is_outside
from yoloxdet.data.spec import DatasetSpec, DatasetSpecError, SplitSource
from yoloxdet.io import IMAGE_SUFFIXES

EXIF_ORIENTATION = 0x0112


@dataclass
class ReadResult:
    records: list[Record] | RecordIndex
    names: tuple[str, ...]
    category_ids: tuple[int, ...]  # contiguous index -> dataset category id
    issues: list[Issue] = field(default_factory=list)
    coco_file: Path | None = None  # the COCO JSON (crowd boxes included), read again for evaluation


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
class _CocoImage(msgspec.Struct, gc=False):  # no cycles: the garbage collector need not track them
    id: Any = None
    file_name: Any = None
    width: Any = None
    height: Any = None


class _CocoAnnotation(msgspec.Struct, gc=False):
    id: Any = None
    image_id: Any = -1
    category_id: Any = None
    bbox: Any = None
    area: Any = None  # None: absent, w * h is used
    iscrowd: Any = 0


class _CocoCategory(msgspec.Struct):
    id: Any = None
    name: Any = None


class _CocoFile(msgspec.Struct):
    """The fields the reader uses; msgspec skips the rest (segmentation polygons are most of a COCO file)
    without building Python objects for them, ~8x faster than ``json.loads`` on COCO train2017."""

    images: list[_CocoImage] | None = None
    annotations: list[_CocoAnnotation] | None = None
    categories: list[_CocoCategory] | None = None


def _load_coco(ann_path: Path) -> _CocoFile:
    try:
        data = Path(ann_path).read_bytes()
    except OSError as exc:
        raise DatasetSpecError(f"{ann_path}: cannot read COCO annotations: {exc}") from None
    try:
        gt = msgspec.json.decode(data, type=_CocoFile)
    except msgspec.DecodeError:  # NaN literals (written by some tools) or a value of an unexpected type
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise DatasetSpecError(f"{ann_path}: cannot read COCO annotations: {exc}") from None
        raw = raw if isinstance(raw, dict) else {}
        gt = _CocoFile(*(raw.get(key) for key in ("images", "annotations", "categories")))
        for key, kind in (
            ("images", _CocoImage),
            ("annotations", _CocoAnnotation),
            ("categories", _CocoCategory),
        ):
            items = getattr(gt, key)
            if isinstance(items, list):
                fields = set(kind.__struct_fields__)
                setattr(gt, key, [kind(**{k: v for k, v in item.items() if k in fields}) for item in items])
    for key in ("images", "annotations", "categories"):
        if not isinstance(getattr(gt, key), list):
            raise DatasetSpecError(f"{ann_path}: not a COCO detection file (no '{key}' list)")
    return gt


def read_coco(source: SplitSource, names: tuple[str, ...] | None = None) -> ReadResult:
    """COCO JSON as official: category ids mapped through their sorted order, crowd boxes skipped, boxes
    clipped to the image (``x1 = max(0, x)``, ``x2 = min(W, x1 + max(0, w))``), ``area <= 0`` dropped.

    Annotations are checked as arrays (one numpy pass per rule); only the bad ones become Python objects.
    Issues come in file order: images first, then annotations.
    """
    ann_path = Path(source.annotations)  # type: ignore[arg-type]
    with collector_paused():
        return _read_coco(ann_path, source, names)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are made (a COCO file's annotations, a
    split's issues): with it running, its passes over the growing heap (torch's included) cost more than the
    work itself at COCO size, and grow faster than it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_coco(ann_path: Path, source: SplitSource, names: tuple[str, ...] | None) -> ReadResult:
    gt = _load_coco(ann_path)
    category_ids = tuple(sorted(int(c.id) for c in gt.categories))
    by_id = {int(c.id): str(c.name) for c in gt.categories}
    file_names = tuple(by_id[i] for i in category_ids)
    if names is not None and tuple(names) != file_names:
        raise DatasetSpecError(
            f"{ann_path}: category names {file_names[:3]}... differ from the description's 'names'"
        )
    issues: list[Issue] = []
    position: dict[int, int] = {}  # image id -> record position
    missing: set[int] = set()
    paths: list[str] = []
    sizes: list[tuple[int, int]] = []
    image_dir = str(source.images)
    for im in gt.images:
        image_id = int(im.id)
        path = os.path.join(image_dir, im.file_name if im.file_name is not None else f"{image_id:012}.jpg")
        if not os.path.isfile(path):
            issues.append(Issue(Path(path), "image file is missing", f"image id {image_id}"))
            missing.add(image_id)
            continue
        if image_id in position:  # a repeated id: the later entry wins, as in a dict keyed by id
            paths[position[image_id]], sizes[position[image_id]] = path, (int(im.width), int(im.height))
            continue
        position[image_id] = len(paths)
        paths.append(path)
        sizes.append((int(im.width), int(im.height)))
    sizes_wh = np.asarray(sizes, np.int64).reshape(-1, 2)
    boxes, labels, image_of, ann_issues = _coco_boxes(
        gt.annotations, position, missing, category_ids, sizes_wh, ann_path
    )
    order = np.argsort(image_of, kind="stable")  # group by image, file order within each image
    offsets = np.zeros(len(paths) + 1, np.int64)
    np.cumsum(np.bincount(image_of, minlength=len(paths)), out=offsets[1:])
    index = RecordIndex(
        StringArray.of(paths),
        np.asarray(list(position), np.int64).reshape(-1),
        sizes_wh,
        offsets,
        boxes[order],
        labels[order],
        StringArray.of([str(ann_path)]),
        np.zeros(len(paths), np.int64),
    )
    return ReadResult(index, file_names, category_ids, issues + ann_issues, coco_file=ann_path)


def _coco_boxes(
    anns: list[_CocoAnnotation],
    position: dict[int, int],
    missing: set[int],
    category_ids: tuple[int, ...],
    sizes_wh: np.ndarray,
    ann_path: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Issue]]:
    """Usable boxes (clipped xyxy float32), their class index and record position, and the issues, in
    annotation order. Rules in the order the official loader applies them."""
    found: list[tuple[int, int, Issue]] = []  # (annotation, rule, issue), sorted at the end

    def report(rows: np.ndarray, rule: int, message, severity: str = "error") -> None:
        for k in rows.tolist():
            found.append((k, rule, Issue(ann_path, message(k), f"annotation id {anns[k].id}", severity)))

    image_ids = [int(a.image_id) for a in anns]
    pos = np.asarray([position.get(i, -1) for i in image_ids], np.int64)
    report(
        np.flatnonzero((pos < 0) & ~np.isin(image_ids, list(missing))),
        0,
        lambda k: f"refers to unknown image id {image_ids[k]}",
    )  # a missing file was reported once
    alive = (pos >= 0) & ~np.asarray([bool(a.iscrowd) for a in anns], bool).reshape(-1)  # crowd: eval only
    index_of = {cid: i for i, cid in enumerate(category_ids)}
    cls = np.asarray([index_of.get(a.category_id, -1) for a in anns], np.int64)
    report(np.flatnonzero(alive & (cls < 0)), 1, lambda k: f"unknown category id {anns[k].category_id}")
    alive &= cls >= 0
    xywh, malformed = _coco_xywh([a.bbox for a in anns])
    report(np.flatnonzero(alive & malformed), 2, lambda k: f"malformed bbox {anns[k].bbox!r}")
    alive &= ~malformed
    x, y, w, h = xywh.T
    raw = np.stack([x, y, x + w, y + h], axis=1)
    raw_list = raw.tolist()
    with np.errstate(invalid="ignore"):
        not_finite = ~np.isfinite(raw).all(axis=1)
        no_size = ~not_finite & ((raw[:, 2] <= raw[:, 0]) | (raw[:, 3] <= raw[:, 1]))
    report(np.flatnonzero(alive & not_finite), 3, lambda k: f"{box_problem(tuple(raw_list[k]))}; dropped")
    report(np.flatnonzero(alive & no_size), 3, lambda k: f"{box_problem(tuple(raw_list[k]))}; dropped")
    alive &= ~not_finite & ~no_size
    area = np.ones(len(anns))
    rows = np.flatnonzero(alive).tolist()
    area[rows] = [float(anns[k].area) if anns[k].area is not None else w[k] * h[k] for k in rows]
    no_area = alive & (area <= 0)
    report(np.flatnonzero(no_area), 3, lambda k: f"area {anns[k].area} <= 0; dropped")
    alive &= ~no_area
    size_w, size_h = (sizes_wh[pos].T if len(pos) else np.zeros((2, 0))).astype(np.float64)
    outside = alive & (
        (raw[:, 0] < -1) | (raw[:, 1] < -1) | (raw[:, 2] > size_w + 1) | (raw[:, 3] > size_h + 1)
    )  # tolerance 1 px, as is_outside
    report(
        np.flatnonzero(outside),
        4,
        lambda k: (
            f"box {[round(v, 1) for v in raw_list[k]]} reaches outside "
            f"the {int(size_w[k])}x{int(size_h[k])} image; clipped"
        ),
        "warning",
    )
    x1, y1 = np.maximum(0.0, x), np.maximum(0.0, y)
    clipped = np.stack(
        [x1, y1, np.minimum(size_w, x1 + np.maximum(0.0, w)), np.minimum(size_h, y1 + np.maximum(0.0, h))],
        axis=1,
    )
    gone = alive & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    report(np.flatnonzero(gone), 5, lambda _: "box lies entirely outside the image; dropped")
    keep = np.flatnonzero(alive & ~gone)
    found.sort(key=lambda item: item[:2])
    return (clipped[keep].astype(np.float32).reshape(-1, 4), cls[keep], pos[keep], [i for _, _, i in found])


def _coco_xywh(bboxes: list) -> tuple[np.ndarray, np.ndarray]:
    """``[n, 4]`` float64 boxes and a mask of the malformed ones (not 4 numbers; their row is NaN)."""
    try:
        xywh = np.asarray(bboxes, np.float64)
        if xywh.shape == (len(bboxes), 4):
            return xywh, np.zeros(len(bboxes), bool)
    except (TypeError, ValueError):
        pass
    xywh = np.full((len(bboxes), 4), np.nan)
    malformed = np.zeros(len(bboxes), bool)
    for k, bbox in enumerate(bboxes):
        try:
            xywh[k] = [float(v) for v in bbox]
        except (TypeError, ValueError):
            malformed[k] = True
    return xywh, malformed


# ---------------------------------------------------------------- Pascal VOC
def read_voc(
    sources: Iterable[SplitSource], names: tuple[str, ...] | None, keep_difficult: bool = True
) -> ReadResult:
    """Pascal VOC: ``<dir>/Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, ids from
    ``ImageSets/Main/<set>.txt``.

    Coordinates become 0-based as official (``int(float(v)) - 1``). Without ``names`` the classes are the
    sorted names found in the XML files.
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
        rec = Record(
            image_path,
            len(records),
            width,
            height,
            *empty_boxes(),
            label_file=xml,
            extra={"difficult": np.asarray(difficult, bool)},
        )
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
        issues.append(
            Issue(
                path,
                f"box {[round(v, 1) for v in box]} reaches outside the {width}x{height} image; clipped",
                where,
                "warning",
            )
        )
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
    """The ultralytics convention: the last ``images`` folder in the path becomes ``labels``, suffix
    ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo(sources: Iterable[SplitSource], names: tuple[str, ...]) -> ReadResult:
    """YOLO txt: one ``cls cx cy w h`` row per box, normalised to the image size; a missing or empty label
    file means a negative image. Polygon rows (``cls x1 y1 x2 y2 ...``) become their bounding box."""
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


def _parse_yolo_labels(
    path: Path, width: int, height: int, num_classes: int, issues: list[Issue]
) -> tuple[np.ndarray, np.ndarray]:
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
