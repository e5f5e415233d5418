"""``DetectionDataset``: any supported format behind one interface, with an optional decoded-image cache.

``build_dataset(spec, split)`` reads the annotations once (see :mod:`yoloxdet.data.formats`); ``load(i)``
decodes one image with its boxes in original pixels; ``load_resized(i, size_hw)`` gives the official
``pull_item`` (image resized by ``r = min(H / h, W / w)``, boxes scaled by ``r``), served from the cache when
enabled.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yoloxdet.config import CHOICES
from yoloxdet.data.formats import read_split
from yoloxdet.data.index import RecordIndex
from yoloxdet.data.records import Issue, Record
from yoloxdet.data.spec import DatasetSpec
from yoloxdet.io import ImageReadError, atomic_path, read_image, write_bytes_atomic

logger = logging.getLogger(__name__)
CACHE_MODES = CHOICES["data.cache"]


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # [H, W, 3] uint8 BGR
    boxes_xyxy: np.ndarray  # [N, 4] float32, pixels of ``image``
    labels: np.ndarray  # [N] int64, contiguous class index
    image_id: int
    path: Path


class DetectionDataset:
    """Images and boxes of one split. ``names[i]`` is class ``i``; ``category_ids[i]`` its id in the dataset
    (COCO category ids; ``i`` for VOC and YOLO).

    ``records`` is a :class:`RecordIndex` (numpy arrays, shared by forked loader workers without copies);
    assigning a list of :class:`Record` converts it. ``coco_file`` is read again only by :meth:`to_coco`."""

    def __init__(
        self,
        records: Sequence[Record],
        names: tuple[str, ...],
        category_ids: tuple[int, ...],
        issues: list[Issue] | None = None,
        coco_file: Path | None = None,
    ) -> None:
        self.records = records  # type: ignore[assignment]  # the setter builds the index
        self.names = names
        self.category_ids = category_ids
        self.issues = issues or []
        self.coco_file = coco_file
        self._coco_gt: dict[str, Any] | None = None
        self._cache_mode = "none"
        self._cache_dir: Path | None = None
        self._ram: dict[tuple[int, int, int], np.ndarray] = {}

    @property
    def records(self) -> RecordIndex:
        return self._index

    @records.setter
    def records(self, records: Sequence[Record]) -> None:
        self._index = RecordIndex.from_records(records)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def load(self, index: int) -> Sample:
        """Decode image ``index`` (BGR, EXIF applied). Raises ImageReadError naming the file."""
        path, (boxes, labels) = self._index.path(index), self._index.boxes(index)
        return Sample(read_image(path), boxes.copy(), labels.copy(), int(self._index.image_ids[index]), path)

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes_xyxy, labels) of ``index`` in original pixels, without decoding the image (read-only
        views)."""
        return self._index.boxes(index)

    def box_counts(self) -> np.ndarray:
        """[N] number of usable boxes of every image."""
        return self._index.box_counts

    def size_wh(self, index: int) -> tuple[int, int]:
        """(width, height) of image ``index`` as annotated."""
        return self._index.size_wh(index)

    def load_resized(self, index: int, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The official ``pull_item``: image resized by ``r = min(H/h, W/w)`` (INTER_LINEAR), boxes times
        ``r``.

        Returns image [h', w', 3] uint8 (read-only when cached: copy before writing), boxes_xyxy, labels
        (read-only).
        """
        image = self._cached(index, size_hw)
        if image is None:
            image = resize_to_fit(read_image(self._index.path(index)), size_hw)
            self._store(index, size_hw, image)
        w, h = self._index.size_wh(index)
        boxes, labels = self._index.boxes(index)
        if image.shape[0] != int(
            h * min(size_hw[0] / h, size_hw[1] / w)
        ):  # header size disagrees with pixels
            h, w = self._original_hw(index)
        ratio = min(size_hw[0] / h, size_hw[1] / w)
        return image, boxes * np.float32(ratio), labels

    def _original_hw(self, index: int) -> tuple[int, int]:
        return read_image(self._index.path(index)).shape[:2]

    # ------------------------------------------------------------ cache
    def enable_cache(
        self, mode: str, size_hw: tuple[int, int], cache_dir: str | Path | None = None, workers: int = 4
    ) -> None:
        """Cache decoded, resized images: "ram" fills memory now (before loader workers fork, so they share
        it), "disk" writes ``.npy`` files to ``cache_dir`` lazily and reuses them across runs."""
        if mode not in CACHE_MODES:
            raise ValueError(f"cache mode '{mode}' is not one of {list(CACHE_MODES)}")
        self._cache_mode = mode
        if mode == "disk":
            if cache_dir is None:
                raise ValueError("disk cache needs a cache_dir")
            self._cache_dir = Path(cache_dir)
            self._cache_dir.mkdir(parents=True, exist_ok=True)
        elif mode == "ram":

            def fill(i: int) -> None:
                try:
                    self.load_resized(i, size_hw)
                except ImageReadError as exc:
                    logger.warning("cache: %s", exc)

            with ThreadPoolExecutor(max(1, workers)) as pool:
                list(pool.map(fill, range(len(self))))
            gib = sum(a.nbytes for a in self._ram.values()) / 2**30
            logger.info("cached %d images in RAM (%.2f GiB)", len(self._ram), gib)

    def save_ram_cache(self, path: str | Path) -> None:
        """Write the filled RAM cache to ``path`` as one flat uint8 array (``.npy``) plus ``path.index.npy``
        (rows of index, cache height, cache width, offset, image height, image width), for other processes
        on this machine to map with :meth:`attach_ram_cache`."""
        keys = sorted(self._ram)
        rows = np.zeros((len(keys), 6), dtype=np.int64)
        offset = 0
        for row, key in zip(rows, keys):
            image = self._ram[key]
            row[:] = (*key, offset, *image.shape[:2])
            offset += image.size
        flat = np.empty(offset, dtype=np.uint8)
        for row, key in zip(rows, keys):
            flat[row[3] : row[3] + self._ram[key].size] = self._ram[key].reshape(-1)
        path = Path(path)
        with atomic_path(ram_cache_files(path)[1]) as tmp, open(tmp, "wb") as f:
            np.save(f, rows)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # written last: its presence means complete
            np.save(f, flat)

    def attach_ram_cache(self, path: str | Path) -> None:
        """Serve the RAM cache from ``path`` (:meth:`save_ram_cache`): read-only views of one file mapping,
        so every process on the machine (and every loader worker) shares a single copy in the page cache.
        The file may be unlinked once attached; the mapping stays valid."""
        path = Path(path)
        flat = np.load(path, mmap_mode="r")
        rows = np.load(ram_cache_files(path)[1])
        self._cache_mode = "ram"
        self._ram = {}
        for index, cache_h, cache_w, offset, h, w in rows.tolist():
            self._ram[(index, cache_h, cache_w)] = flat[offset : offset + h * w * 3].reshape(h, w, 3)

    def _disk_path(self, index: int, size_hw: tuple[int, int]) -> Path:
        assert self._cache_dir is not None
        path = self._index.path(index)
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{size_hw}"
        return self._cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"

    def _cached(self, index: int, size_hw: tuple[int, int]) -> np.ndarray | None:
        if self._cache_mode == "ram":
            return self._ram.get((index, *size_hw))
        if self._cache_mode == "disk":
            path = self._disk_path(index, size_hw)
            if path.is_file():
                try:
                    return np.load(path, mmap_mode="r")
                except (OSError, ValueError):
                    return None  # a damaged cache file is rebuilt
        return None

    def _store(self, index: int, size_hw: tuple[int, int], image: np.ndarray) -> None:
        if self._cache_mode == "ram":
            image.setflags(write=False)
            self._ram[(index, *size_hw)] = image
        elif self._cache_mode == "disk":
            buffer = io.BytesIO()
            np.save(buffer, image)
            write_bytes_atomic(self._disk_path(index, size_hw), buffer.getvalue())

    # ------------------------------------------------------------ evaluation
    def to_coco(self) -> dict[str, Any]:
        """COCO-format ground truth for evaluation. For COCO sources this is the original file's content
        (crowd boxes and original category ids included) restricted to the usable images."""
        categories = [{"id": cid, "name": n} for cid, n in zip(self.category_ids, self.names)]
        if self.coco_file is not None:
            if self._coco_gt is None:  # read on first use: training never needs it for the train split
                self._coco_gt = json.loads(self.coco_file.read_text())
            gt = self._coco_gt
            ids = set(self._index.image_ids.tolist())
            return {
                "images": [im for im in gt["images"] if int(im["id"]) in ids],
                "annotations": [a for a in gt["annotations"] if int(a.get("image_id", -1)) in ids],
                "categories": gt["categories"],
            }
        images, annotations = [], []
        for rec in self.records:
            images.append(
                {"id": rec.image_id, "file_name": str(rec.path), "width": rec.width, "height": rec.height}
            )
            for box, label in zip(rec.boxes_xyxy.tolist(), rec.labels.tolist()):
                w, h = box[2] - box[0], box[3] - box[1]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": rec.image_id,
                        "iscrowd": 0,
                        "category_id": self.category_ids[label],
                        "bbox": [box[0], box[1], w, h],
                        "area": w * h,
                    }
                )
        return {"images": images, "annotations": annotations, "categories": categories}

    def class_counts(self) -> Counter:
        return Counter({c: n for c, n in enumerate(np.bincount(self._index.labels).tolist()) if n})


def resize_to_fit(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize by ``r = min(H/h, W/w)`` to ``(int(w r), int(h r))`` with INTER_LINEAR, as the official
    loader."""
    h, w = image.shape[:2]
    ratio = min(size_hw[0] / h, size_hw[1] / w)
    new_wh = (int(w * ratio), int(h * ratio))
    if new_wh == (w, h):
        return image
    return cv2.resize(image, new_wh, interpolation=cv2.INTER_LINEAR)


def build_dataset(spec: DatasetSpec, split: str) -> DetectionDataset:
    """Read ``split`` of a dataset description; problems are logged as one counted warning, never fatal."""
    result = read_split(spec, split)
    errors = [i for i in result.issues if i.severity == "error"]
    if result.issues:
        logger.warning(
            "%s (%s split): %d problem(s) in the annotations (%d dropped a box or image); first: %s. "
            "Run `yoloxdet check-data` for the full list.",
            spec.source or spec.root,
            split,
            len(result.issues),
            len(errors),
            result.issues[0],
        )
    if not len(result.records):
        raise ValueError(f"{spec.source or spec.root}: split '{split}' has no usable images")
    return DetectionDataset(
        result.records, result.names, result.category_ids, result.issues, result.coco_file
    )


def ram_cache_files(path: str | Path) -> tuple[Path, Path]:
    """The two files of a saved RAM cache: the pixels and their index."""
    path = Path(path)
    return path, path.with_name(path.name + ".index.npy")
