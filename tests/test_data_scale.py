"""Data at scale, on small generated splits: the parallel header check finds what the serial full decode
finds, the check cache follows the content, and the numpy index serves exactly the annotation file's
samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from test_data_helpers import write_exif_rotated, write_image, write_truncated_jpeg, write_yolo

from yoloxdet.data.augment import ResolvedAugment
from yoloxdet.data.checks import check_files, checked_dataset
from yoloxdet.data.datasets import build_dataset, resize_to_fit
from yoloxdet.data.index import RecordIndex
from yoloxdet.data.loader import build_train_loader
from yoloxdet.data.spec import load_dataset_spec
from yoloxdet.io import read_image


def bad_image_folder(tmp_path: Path) -> tuple[list[Path], list[tuple[int, int]]]:
    """40 small images (enough for several chunks) with every kind of image problem among them."""
    folder = tmp_path / "images"
    paths, sizes = [], []
    for k in range(36):
        path = folder / f"{k:03}.png"
        write_image(path, (12 + k % 5, 10), seed=k)
        paths.append(path)
        sizes.append((12 + k % 5, 10))
    paths[3].write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt
    paths[7].write_bytes(paths[7].read_bytes()[:-30])  # truncated PNG
    sizes[9] = (99, 10)  # size differs from the annotations
    (folder / "dup.png").write_bytes(paths[20].read_bytes())  # duplicate bytes
    os.symlink(paths[21], folder / "link.png")  # the same file twice
    jpg = folder / "cut.jpg"
    write_truncated_jpeg(jpg, (80, 60))
    write_exif_rotated(folder / "rot.jpg")
    extra = [folder / "dup.png", folder / "link.png", jpg, folder / "rot.jpg", folder / "missing.png"]
    return paths + extra, [*sizes, (12, 10), (13, 10), (80, 60), (20, 30), (5, 5)]


def test_parallel_header_check_finds_what_the_serial_decode_finds(tmp_path):
    paths, sizes = bad_image_folder(tmp_path)
    serial, serial_bad = check_files(paths, sizes, workers=1, decode=True)
    parallel, parallel_bad = check_files(paths, sizes, workers=2, decode=False)
    assert [str(i) for i in parallel] == [str(i) for i in serial]
    assert parallel_bad.tolist() == serial_bad.tolist()
    messages = "\n".join(map(str, serial))
    for part in (
        "003.png: corrupt",
        "007.png: truncated",
        "cut.jpg: truncated",
        "009.png: image is 16x10",
        "dup.png: duplicate of",
        "link.png: duplicate of",
        "rot.jpg: EXIF orientation 6",
        "missing.png: image file is missing",
    ):
        assert part in messages
    assert np.flatnonzero(serial_bad).tolist() == [3, 7, 38, 40]


def write_coco_split(root: Path, coco128: Path, count: int = 24) -> Path:
    """``count`` coco128 images (symlinked) with their official annotations, plus cases the reader must
    handle: a crowd box, a box reaching outside its image, a negative image, annotations out of image
    order."""
    gt = json.loads((coco128 / "annotations" / "instances.json").read_text())
    images = gt["images"][:count]
    ids = {im["id"] for im in images}
    anns = [a for a in gt["annotations"] if a["image_id"] in ids][::-1]  # not grouped by image
    anns = [a for a in anns if a["image_id"] != images[5]["id"]]  # a negative image
    first = images[0]
    anns.append(
        {
            "id": 10**7,
            "image_id": first["id"],
            "category_id": 1,
            "iscrowd": 1,
            "area": 100.0,
            "bbox": [1.0, 1.0, 10.0, 10.0],
        }
    )
    anns.append(
        {
            "id": 10**7 + 1,
            "image_id": first["id"],
            "category_id": 3,
            "iscrowd": 0,
            "area": 500.0,
            "bbox": [first["width"] - 20.5, 3.25, 40.0, 20.0],
        }
    )
    (root / "images").mkdir(parents=True)
    for im in images:
        os.symlink(coco128 / "images" / im["file_name"], root / "images" / im["file_name"])
    (root / "annotations").mkdir()
    (root / "annotations" / "instances.json").write_text(
        json.dumps({**gt, "images": images, "annotations": anns})
    )
    spec = root / "data.yaml"
    spec.write_text("format: coco\ntrain: {images: images, annotations: annotations/instances.json}\n")
    return spec


class AnnotationFileDataset:
    """The samples straight from the COCO file, one Python list per image, with the official conversion
    (crowd skipped, ``x1 = max(0, x)``, ``x2 = min(W, x1 + max(0, w))``): what the index must reproduce."""

    def __init__(self, spec_path: Path) -> None:
        root = spec_path.parent
        gt = json.loads((root / "annotations" / "instances.json").read_text())
        label_of = {cid: i for i, cid in enumerate(sorted(c["id"] for c in gt["categories"]))}
        self.items = {
            im["id"]: (root / "images" / im["file_name"], im["width"], im["height"], [], [])
            for im in gt["images"]
        }
        for a in gt["annotations"]:
            if a["iscrowd"]:
                continue
            _, width, height, boxes, labels = self.items[a["image_id"]]
            x, y, w, h = a["bbox"]
            x1, y1 = max(0.0, x), max(0.0, y)
            boxes.append((x1, y1, min(float(width), x1 + max(0.0, w)), min(float(height), y1 + max(0.0, h))))
            labels.append(label_of[a["category_id"]])
        self.items = list(self.items.values())

    def __len__(self) -> int:
        return len(self.items)

    def box_counts(self) -> np.ndarray:
        return np.asarray([len(item[4]) for item in self.items])

    def size_wh(self, index: int) -> tuple[int, int]:
        return self.items[index][1], self.items[index][2]

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        boxes, labels = self.items[index][3:]
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)

    def load_resized(self, index: int, size_hw: tuple[int, int]):
        image = resize_to_fit(read_image(self.items[index][0]), size_hw)
        (width, height), (boxes, labels) = self.size_wh(index), self.annotations(index)
        ratio = min(size_hw[0] / height, size_hw[1] / width)
        return image, boxes * np.float32(ratio), labels


def test_index_returns_the_annotation_file_samples(tmp_path, coco128):
    spec_path = write_coco_split(tmp_path, coco128)
    ours, reference = build_dataset(load_dataset_spec(spec_path), "train"), AnnotationFileDataset(spec_path)
    assert len(ours) == len(reference)
    for i in range(len(ours)):
        rec = ours.records[i]
        assert (rec.path, (rec.width, rec.height)) == (reference.items[i][0], reference.size_wh(i))
        for got, want in zip(ours.annotations(i), reference.annotations(i)):
            assert got.dtype == want.dtype and np.array_equal(got, want)
    assert ours.box_counts()[5] == 0 and ours.annotations(0)[0][-1, 2] == reference.items[0][1]  # clipped
    saved = tmp_path / "index.npz"
    saved.write_bytes(ours.records.to_bytes())
    again = RecordIndex.load(saved)
    kept = again.take(np.array([4, 0, 5]))
    assert [kept[k].path for k in range(3)] == [ours.records[i].path for i in (4, 0, 5)]
    assert np.array_equal(kept.boxes(1)[0], ours.annotations(0)[0]) and len(kept.boxes(2)[1]) == 0


def test_mosaic_batches_are_bit_identical_to_the_annotation_file(tmp_path, coco128):
    spec_path = write_coco_split(tmp_path, coco128, count=12)
    aug = ResolvedAugment(mosaic_prob=1.0, mixup_prob=0.5, enable_mixup=True)

    def batches(dataset, workers: int) -> list:
        loader = build_train_loader(
            dataset, batch_size=4, input_size=(96, 96), augment=aug, seed=3, workers=workers
        )
        loader.set_epoch(1, mosaic=True)
        return [(images, t.boxes_cxcywh, t.labels, t.mask) for images, t in loader]

    want = batches(AnnotationFileDataset(spec_path), workers=0)
    got = batches(build_dataset(load_dataset_spec(spec_path), "train"), workers=2)  # forked workers
    assert len(got) == len(want) == 3
    for batch, reference in zip(got, want):
        assert all(torch.equal(a, b) for a, b in zip(batch, reference))
    assert sum(int(mask.sum()) for *_, mask in got) > 20


def test_check_cache_follows_the_content(tmp_path, coco128):
    spec_path = write_coco_split(tmp_path / "coco", coco128, count=6)
    spec, cache = load_dataset_spec(spec_path), tmp_path / "cache"
    first = checked_dataset(spec, "train", cache, workers=1, progress=False)
    again = checked_dataset(spec, "train", cache, workers=1, progress=False)  # from the saved index
    assert len(list(cache.glob("*.npz"))) == 1
    for name in ("image_ids", "sizes_wh", "box_offsets", "boxes_xyxy", "labels"):
        assert np.array_equal(getattr(again.records, name), getattr(first.records, name))
    assert again.names == first.names and again.to_coco() == first.to_coco()
    ann_file = tmp_path / "coco" / "annotations" / "instances.json"
    gt = json.loads(ann_file.read_text())
    gt["annotations"] = gt["annotations"][1:]
    ann_file.write_text(json.dumps(gt))
    changed = checked_dataset(spec, "train", cache, workers=1, progress=False)
    assert (
        len(list(cache.glob("*.npz"))) == 2 and len(changed.records.labels) == len(first.records.labels) - 1
    )
    # a YOLO label file edited in place: a new check, and the new boxes
    yolo_spec = load_dataset_spec(write_yolo(tmp_path / "yolo"))
    before = checked_dataset(yolo_spec, "train", cache, workers=1, progress=False)
    (tmp_path / "yolo" / "labels" / "train" / "c.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    after = checked_dataset(yolo_spec, "train", cache, workers=1, progress=False)
    assert len(list(cache.glob("*.npz"))) == 4
    assert len(after.records.labels) == len(before.records.labels) + 1


def test_checked_dataset_drops_what_the_check_finds_unreadable(tmp_path, coco128):
    spec_path = write_coco_split(tmp_path / "coco", coco128, count=6)
    victim = (
        tmp_path
        / "coco"
        / "images"
        / json.loads((tmp_path / "coco" / "annotations" / "instances.json").read_text())["images"][2][
            "file_name"
        ]
    )
    victim.unlink()
    victim.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    dataset = checked_dataset(load_dataset_spec(spec_path), "train", tmp_path / "cache", progress=False)
    assert len(dataset) == 5 and victim not in {r.path for r in dataset.records}
