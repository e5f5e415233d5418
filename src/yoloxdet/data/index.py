"""``RecordIndex``: the records of a split in a few flat numpy arrays instead of one Python object per image.

A COCO-size split (120k images, 860k boxes) as Python objects is hundreds of MB of small objects whose
reference counts change whenever they are read; forked DataLoader workers then copy the pages they touch, one
by one, until each worker holds its own copy. Here the whole index is a few arrays (paths as one byte blob
plus offsets, boxes concatenated with per-image offsets), so reading it touches no reference counts and
workers keep sharing the parent's pages. It saves to and loads from one ``.npz`` file, which makes a cached
start fast.

``index[i]`` still returns a :class:`Record` (built on demand, with copies of its boxes), so code that
iterates records keeps working; hot paths use :meth:`RecordIndex.boxes` and friends, which build nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yoloxdet.data.records import Record

INDEX_VERSION = 1  # bump when the arrays change, so that cached indexes are rebuilt


@dataclass(frozen=True)
class StringArray:
    """Strings as one UTF-8 byte blob and ``[N + 1]`` offsets: no Python object per string."""

    blob: np.ndarray  # [total bytes] uint8
    offsets: np.ndarray  # [N + 1] int64

    @staticmethod
    def of(strings: Iterable[str]) -> StringArray:
        encoded = [s.encode() for s in strings]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return StringArray(np.frombuffer(b"".join(encoded), np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes().decode()

    def take(self, indices: np.ndarray) -> StringArray:
        return StringArray.of(self[int(i)] for i in indices)


@dataclass(frozen=True)
class RecordIndex(Sequence[Record]):
    """Images of a split and their usable boxes (original pixels, ``[x1, y1, x2, y2]``, float32).

    Box rows ``box_offsets[i]:box_offsets[i + 1]`` of ``boxes``/``labels`` (and ``difficult``, VOC only)
    belong to image ``i``. ``label_file_ids[i]`` indexes ``label_files`` (-1: none).
    """

    paths: StringArray
    image_ids: np.ndarray  # [N] int64
    sizes_wh: np.ndarray  # [N, 2] int64
    box_offsets: np.ndarray  # [N + 1] int64
    boxes_xyxy: np.ndarray  # [M, 4] float32
    labels: np.ndarray  # [M] int64
    label_files: StringArray
    label_file_ids: np.ndarray  # [N] int64
    difficult: np.ndarray | None = None  # [M] bool, VOC only

    def __post_init__(self) -> None:
        for array in (
            self.image_ids,
            self.sizes_wh,
            self.box_offsets,
            self.boxes_xyxy,
            self.labels,
            self.label_file_ids,
            self.difficult,
        ):
            if array is not None:
                array.setflags(write=False)  # records hand out views of them

    # ------------------------------------------------------------ per image, without building a Record
    def __len__(self) -> int:
        return len(self.image_ids)

    def path(self, i: int) -> Path:
        return Path(self.paths[i])

    def image_files(self) -> list[tuple[int, Path]]:
        """``(image_id, path)`` of every record, in order (what ``loader.decoded_images`` takes)."""
        return [(int(self.image_ids[i]), self.path(i)) for i in range(len(self))]

    def size_wh(self, i: int) -> tuple[int, int]:
        w, h = self.sizes_wh[i]
        return int(w), int(h)

    def boxes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes_xyxy [n, 4] float32, labels [n] int64) of image ``i``, read-only views."""
        start, end = self.box_offsets[i], self.box_offsets[i + 1]
        return self.boxes_xyxy[start:end], self.labels[start:end]

    @property
    def box_counts(self) -> np.ndarray:
        return np.diff(self.box_offsets)

    def __getitem__(self, i: int) -> Record:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(f"record {i} out of range for {len(self)} images")
        i = i % len(self)
        boxes, labels = self.boxes(i)
        file_id = int(self.label_file_ids[i])
        extra = {}
        if self.difficult is not None:
            extra["difficult"] = self.difficult[self.box_offsets[i] : self.box_offsets[i + 1]].copy()
        return Record(  # with copies of its arrays: a Record is the caller's to change, the index is not
            self.path(i),
            int(self.image_ids[i]),
            *self.size_wh(i),
            boxes.copy(),
            labels.copy(),
            Path(self.label_files[file_id]) if file_id >= 0 else None,
            extra,
        )

    def __iter__(self) -> Iterator[Record]:
        return (self[i] for i in range(len(self)))

    # ------------------------------------------------------------ building, selecting, saving
    @staticmethod
    def from_records(records: Sequence[Record]) -> RecordIndex:
        if isinstance(records, RecordIndex):
            return records
        counts = [len(r.labels) for r in records]
        offsets = np.zeros(len(records) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        files: dict[str, int] = {}
        file_ids = [
            files.setdefault(str(r.label_file), len(files)) if r.label_file is not None else -1
            for r in records
        ]
        has_difficult = any("difficult" in r.extra for r in records)
        difficult = (
            np.concatenate(
                [np.zeros(0, bool)]
                + [
                    np.asarray(r.extra.get("difficult", np.zeros(len(r.labels), bool)), bool).reshape(-1)
                    for r in records
                ]
            )
            if has_difficult
            else None
        )
        return RecordIndex(
            StringArray.of(str(r.path) for r in records),
            np.asarray([r.image_id for r in records], np.int64).reshape(-1),
            np.asarray([(r.width, r.height) for r in records], np.int64).reshape(-1, 2),
            offsets,
            np.concatenate(
                [np.zeros((0, 4), np.float32)]
                + [np.asarray(r.boxes_xyxy, np.float32).reshape(-1, 4) for r in records]
            ),
            np.concatenate(
                [np.zeros(0, np.int64)] + [np.asarray(r.labels, np.int64).reshape(-1) for r in records]
            ),
            StringArray.of(files),
            np.asarray(file_ids, np.int64).reshape(-1),
            difficult,
        )

    def take(self, keep: np.ndarray) -> RecordIndex:
        """The images at positions ``keep`` (in that order)."""
        keep = np.asarray(keep, np.int64).reshape(-1)
        starts, ends = self.box_offsets[keep], self.box_offsets[keep + 1]
        counts = ends - starts
        offsets = np.zeros(len(keep) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = (np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])).astype(np.int64)
        return RecordIndex(
            self.paths.take(keep),
            self.image_ids[keep],
            self.sizes_wh[keep],
            offsets,
            self.boxes_xyxy[rows],
            self.labels[rows],
            self.label_files,
            self.label_file_ids[keep],
            None if self.difficult is None else self.difficult[rows],
        )

    def to_bytes(self) -> bytes:
        arrays = {
            "version": np.asarray(INDEX_VERSION),
            "paths_blob": self.paths.blob,
            "paths_offsets": self.paths.offsets,
            "image_ids": self.image_ids,
            "sizes_wh": self.sizes_wh,
            "box_offsets": self.box_offsets,
            "boxes_xyxy": self.boxes_xyxy,
            "labels": self.labels,
            "label_files_blob": self.label_files.blob,
            "label_files_offsets": self.label_files.offsets,
            "label_file_ids": self.label_file_ids,
        }
        if self.difficult is not None:
            arrays["difficult"] = self.difficult
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @staticmethod
    def load(path: str | Path) -> RecordIndex | None:
        """The index saved by :meth:`to_bytes`, or None when the file is unreadable or of another version."""
        try:
            with np.load(path, allow_pickle=False) as f:
                if int(f["version"]) != INDEX_VERSION:
                    return None
                return RecordIndex(
                    StringArray(f["paths_blob"], f["paths_offsets"]),
                    f["image_ids"],
                    f["sizes_wh"],
                    f["box_offsets"],
                    f["boxes_xyxy"],
                    f["labels"],
                    StringArray(f["label_files_blob"], f["label_files_offsets"]),
                    f["label_file_ids"],
                    f["difficult"] if "difficult" in f.files else None,
                )
        except (OSError, ValueError, KeyError):
            return None
