"""Dataset checks: catch bad data before it costs a training run.

``check_split`` combines the reader's annotation problems (boxes outside the image, zero/negative size, NaN,
unknown classes, malformed or empty label files, missing images) with image checks: corrupt or truncated
files, EXIF-rotated images and duplicate images. Image checks run in a process pool over chunks of files and
read headers and end markers (full decoding is ``check-data --decode``). ``checked_dataset`` runs them once
per content hash (annotation files' bytes, image files' names, sizes and mtimes), drops unreadable images, so
training never dies mid-epoch on one bad file, and saves the checked index so that the next start loads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import multiprocessing.context
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from yoloxdet.data.datasets import DetectionDataset, build_dataset
from yoloxdet.data.formats import EXIF_ORIENTATION, list_images, yolo_label_path
from yoloxdet.data.index import RecordIndex
from yoloxdet.data.records import Issue
from yoloxdet.data.spec import DatasetSpec
from yoloxdet.io import write_bytes_atomic, write_figure_atomic, write_json_atomic

logger = logging.getLogger(__name__)
CHECK_VERSION = 2  # bump when the checks change, to invalidate cached results


@dataclass
class SplitStats:
    images: int = 0
    negatives: int = 0
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    box_sizes: list[float] = field(default_factory=list)  # sqrt(w * h) / sqrt(W * H) per box

    def summary(self) -> str:
        sizes = np.asarray(self.box_sizes)
        lines = [f"images {self.images}  negatives (no boxes) {self.negatives}  boxes {len(sizes)}"]
        if len(sizes):
            small, large = (sizes < 32 / 640).mean(), (sizes > 96 / 640).mean()
            q = np.percentile(sizes, [5, 50, 95])
            lines.append(
                f"box size sqrt(wh)/sqrt(WH): p5 {q[0]:.3f}  median {q[1]:.3f}  p95 {q[2]:.3f}  "
                f"(~small {small:.0%}, ~large {large:.0%} at 640)"
            )
        lines += [f"  {name:>20s} {n}" for name, n in self.boxes_per_class.items()]
        return "\n".join(lines)


@dataclass
class CheckReport:
    issues: list[Issue]
    stats: dict[str, SplitStats]
    unreadable: set[Path] = field(default_factory=set)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]


def image_problems(
    path: Path, expected_wh: tuple[int, int] | None = None, decode: bool = True
) -> list[Issue]:
    """Check one image: corrupt and truncated files are errors; EXIF rotation and a size that differs from the
    annotations' are warnings.

    With ``decode=False`` only the header is parsed, plus the end marker of JPEG and PNG files: a file cut
    short lacks it, and only such a file is then decoded to tell truncation from harmless trailing bytes. This
    finds the same problems as full decoding except corruption inside complete files (rare; ``check-data
    --decode`` finds those too).
    """
    issues = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
                if decode or not _ends_cleanly(path, im.format):
                    im.load()  # raises on truncated data (ImageFile.LOAD_TRUNCATED_IMAGES is off)
                size = im.size[::-1] if orientation in (5, 6, 7, 8) else im.size
    except FileNotFoundError:
        return [Issue(path, "image file is missing")]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        reason = "truncated" if "truncated" in str(exc) else "corrupt or not an image"
        return [Issue(path, f"{reason} ({exc}); skipped")]
    if orientation not in (1, None):
        issues.append(
            Issue(
                path,
                f"EXIF orientation {orientation}: pixels are rotated on reading, so its "
                "boxes must be given for the rotated image",
                severity="warning",
            )
        )
    if expected_wh is not None and tuple(size) != tuple(expected_wh):
        issues.append(
            Issue(
                path,
                f"image is {size[0]}x{size[1]} but the annotations say {expected_wh[0]}x{expected_wh[1]}",
                severity="warning",
            )
        )
    return issues


_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}  # EOI; the IEND chunk type and its CRC


def _ends_cleanly(path: Path, image_format: str | None) -> bool:
    """True when the file ends with its format's end marker (or the format has none we know)."""
    marker = _END_MARKERS.get(image_format or "")
    if marker is None:
        return True
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - len(marker)))
        return f.read() == marker


FileStat = tuple[int, int, int]  # (size, device, inode)


def _check_chunk(
    paths: list[str], sizes_wh: list[tuple[int, int] | None], decode: bool
) -> list[tuple[list[Issue], FileStat | None]]:
    """Checks of consecutive images (one task of the process pool): issues and the file's identity."""
    out = []
    for path, size in zip(paths, sizes_wh):
        try:
            st = os.stat(path)
            identity: FileStat | None = (st.st_size, st.st_dev, st.st_ino)
        except OSError:
            identity = None
        out.append((image_problems(Path(path), size, decode), identity))
    return out


def _digest(path: str, limit: int | None = None) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha1(f.read(limit) if limit else f.read()).hexdigest()
    except OSError:
        return None


def _duplicates(paths: list[str], identities: list[FileStat | None], workers: int) -> list[Issue]:
    """Files with the same bytes, each named with the first of them, without reading every file: one inode is
    one content; files of a size nobody else has are unique; the rest are told apart by their first 16 KiB
    and, where that agrees, by their whole content."""
    first_of_inode: dict[tuple[int, int], int] = {}
    for k, ident in enumerate(identities):
        if ident is not None:
            first_of_inode.setdefault(ident[1:], k)
    by_size: dict[int, list[int]] = {}
    for k in first_of_inode.values():
        by_size.setdefault(identities[k][0], []).append(k)  # type: ignore[index]
    content: dict[int, str] = {}  # file position -> content key, for inodes that share a size
    with ThreadPoolExecutor(max(1, workers)) as pool:  # file reads and sha1 release the GIL
        candidates = [k for group in by_size.values() if len(group) > 1 for k in group]
        heads = dict(zip(candidates, pool.map(lambda k: _digest(paths[k], 16384), candidates)))
        same_head: dict[tuple, list[int]] = {}
        for k in candidates:
            same_head.setdefault((identities[k][0], heads[k]), []).append(k)  # type: ignore[index]
        full = [k for group in same_head.values() if len(group) > 1 for k in group]
        content.update(zip(full, pool.map(lambda k: _digest(paths[k]), full)))
    issues, first = [], {}
    for k, ident in enumerate(identities):
        if ident is None:
            continue
        owner = first_of_inode[ident[1:]]
        key = content.get(owner) or ident[1:]
        if key in first:
            issues.append(
                Issue(
                    Path(paths[k]), f"duplicate of {Path(paths[first[key]])} (same bytes)", severity="warning"
                )
            )
        else:
            first[key] = k
    return issues


def default_check_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def check_files(
    paths: Sequence[str | Path],
    sizes_wh: Sequence[tuple[int, int] | None] | None = None,
    *,
    workers: int | None = None,
    decode: bool = False,
    progress: bool = False,
) -> tuple[list[Issue], np.ndarray]:
    """Check every image (see :func:`image_problems`) and find duplicates by content, in a process pool of
    ``workers`` (default: the CPUs) fed with chunks of images. Returns the issues in file order (exactly
    those of a serial run) and a mask of the unreadable files."""
    paths = [str(p) for p in paths]
    sizes = list(sizes_wh) if sizes_wh is not None else [None] * len(paths)
    workers = default_check_workers() if workers is None else max(1, workers)
    chunk = max(16, min(512, math.ceil(len(paths) / (8 * workers))))  # ~8 tasks a worker: balanced, few
    spans = [(a, min(a + chunk, len(paths))) for a in range(0, len(paths), chunk)]
    results: list = [None] * len(spans)
    with tqdm(total=len(paths), desc="checking images", unit="img", disable=not progress) as bar:
        if workers == 1 or len(spans) == 1:
            for j, (a, b) in enumerate(spans):
                results[j] = _check_chunk(paths[a:b], sizes[a:b], decode)
                bar.update(b - a)
        else:
            with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
                futures = {
                    pool.submit(_check_chunk, paths[a:b], sizes[a:b], decode): j
                    for j, (a, b) in enumerate(spans)
                }
                for future in as_completed(futures):
                    j = futures[future]
                    results[j] = future.result()
                    bar.update(spans[j][1] - spans[j][0])
    per_file = [item for part in results for item in part]
    issues = [i for found, _ in per_file for i in found]
    unreadable = np.asarray([any(i.severity == "error" for i in found) for found, _ in per_file], bool)
    issues += _duplicates(paths, [ident for _, ident in per_file], workers)
    return issues, unreadable.reshape(-1)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds and the workers import nothing; spawn where fork does not exist
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def check_images(
    paths: Iterable[Path],
    workers: int | None = None,
    sizes_wh: Iterable[tuple[int, int] | None] | None = None,
    decode: bool = True,
) -> tuple[list[Issue], set[Path]]:
    """Check every image (fully decoded unless ``decode=False``) and find duplicates; returns issues and the
    unreadable files."""
    paths = list(paths)
    issues, unreadable = check_files(
        paths, None if sizes_wh is None else list(sizes_wh), workers=workers, decode=decode
    )
    return issues, {Path(p) for p, bad in zip(paths, unreadable) if bad}


def split_stats(dataset: DetectionDataset) -> SplitStats:
    counts = dataset.class_counts()
    index = dataset.records
    wh = index.boxes_xyxy[:, 2:] - index.boxes_xyxy[:, :2]
    image_area = np.repeat(index.sizes_wh.prod(axis=1), index.box_counts).astype(np.float64)
    sizes = np.sqrt(wh.prod(axis=1)) / np.sqrt(image_area)
    return SplitStats(
        images=len(dataset),
        negatives=int((index.box_counts == 0).sum()),
        boxes_per_class={name: counts.get(i, 0) for i, name in enumerate(dataset.names)},
        box_sizes=sizes.tolist(),
    )


def check_split(
    spec: DatasetSpec, split: str, workers: int | None = None, *, decode: bool = False, progress: bool = False
) -> tuple[DetectionDataset, CheckReport]:
    """All checks for one split (image headers, or every pixel with ``decode``). Raises only when the
    description or an annotation file is unreadable."""
    dataset = build_dataset(spec, split)
    index = dataset.records
    image_issues, bad = check_files(
        [index.paths[i] for i in range(len(index))],
        [index.size_wh(i) for i in range(len(index))],
        workers=workers,
        decode=decode,
        progress=progress,
    )
    unreadable = {index.path(int(i)) for i in np.flatnonzero(bad)}
    report = CheckReport(dataset.issues + image_issues, {split: split_stats(dataset)}, unreadable)
    return dataset, report


def content_hash(spec: DatasetSpec, split: str) -> str:
    """Hash of what the checks depend on: the description, annotation files' bytes, image
    names/sizes/mtimes."""
    digest = hashlib.sha1(
        f"v{CHECK_VERSION}|{spec.format}|{split}|{spec.names}|{spec.keep_difficult}".encode()
    )
    files: list[str] = []
    for source in spec.split(split):
        if source.annotations is not None:
            files.append(str(source.annotations))
        root = Path(source.images)
        files.extend(sorted(_walk_files(str(root))) if root.is_dir() else [str(root)])
        if spec.format == "yolo":
            images = list_images(root) if root.exists() else []
            files.extend(str(label) for label in map(yolo_label_path, images) if label.is_file())
            if root.is_file():
                files.extend(str(p) for p in images if p.is_file())
    for path in files:
        stat = os.stat(path)
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        if path.endswith((".json", ".txt", ".xml")) and stat.st_size < 2**28:
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def _walk_files(root: str) -> Iterator[str]:
    """Files under ``root`` (following links, as ``Path.is_file``), without a Path object per file."""
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                yield path


def checked_dataset(
    spec: DatasetSpec, split: str, cache_dir: str | Path, workers: int | None = None, progress: bool = True
) -> DetectionDataset:
    """The dataset with unreadable images removed, checking at most once per content hash.

    The first time, image headers are checked in a process pool of ``workers`` (default: the CPUs), with a
    progress bar; the checked index of records is saved next to the results, so that a later start with the
    same content reads neither the annotations nor any image. Logs one counted warning; the full list is in
    the cached JSON next to it and from ``yoloxdet check-data``.
    """
    key = content_hash(spec, split)
    cache = Path(cache_dir) / f"check-{split}-{key[:16]}.json"
    saved_index = cache.with_suffix(".npz")
    saved = _read_saved(cache) if saved_index.is_file() else None
    index = RecordIndex.load(saved_index) if saved is not None else None
    if saved is not None and index is not None:
        dataset = DetectionDataset(
            index,
            tuple(saved["names"]),
            tuple(saved["category_ids"]),
            coco_file=Path(saved["coco_file"]) if saved["coco_file"] else None,
        )
        n_unreadable, n_issues = len(saved["unreadable"]), saved["issues"]
    else:
        dataset, report = check_split(spec, split, workers, progress=progress)
        n_unreadable, n_issues = len(report.unreadable), len(report.issues)
        if report.unreadable:
            keep = [i for i in range(len(dataset)) if dataset.records.path(i) not in report.unreadable]
            dataset.records = dataset.records.take(np.asarray(keep, np.int64))
        write_bytes_atomic(saved_index, dataset.records.to_bytes())  # first: the JSON marks a complete entry
        write_json_atomic(
            cache,
            {
                "issues": n_issues,
                "unreadable": sorted(map(str, report.unreadable)),
                "names": list(dataset.names),
                "category_ids": list(dataset.category_ids),
                "coco_file": str(dataset.coco_file) if dataset.coco_file else None,
                "list": [str(i) for i in report.issues],
            },
        )
    if n_issues:
        logger.warning(
            "%s (%s split): %d data problem(s), %d unreadable image(s) skipped; details in %s",
            spec.source or spec.root,
            split,
            n_issues,
            n_unreadable,
            cache,
        )
    return dataset


def _read_saved(cache: Path) -> dict | None:
    try:
        saved = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    needed = ("issues", "unreadable", "names", "category_ids", "coco_file")
    return saved if isinstance(saved, dict) and all(k in saved for k in needed) else None


def plot_stats(stats: dict[str, SplitStats], path: str | Path) -> None:
    """Boxes per class and the box-size distribution of each split, as one PNG (written atomically)."""
    import matplotlib  # plotting only: keeps matplotlib out of training start-up

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(stats), 2, figsize=(14, 4 * len(stats)), squeeze=False)
    for row, (split, st) in enumerate(stats.items()):
        names = list(st.boxes_per_class)
        axes[row, 0].bar(range(len(names)), list(st.boxes_per_class.values()))
        axes[row, 0].set_xticks(range(len(names)), names, rotation=90, fontsize=6 if len(names) > 30 else 8)
        axes[row, 0].set_title(f"{split}: boxes per class ({st.images} images, {st.negatives} without boxes)")
        axes[row, 1].hist(st.box_sizes, bins=50, range=(0, 1))
        axes[row, 1].set_title(f"{split}: box size sqrt(wh) / sqrt(WH), {len(st.box_sizes)} boxes")
    fig.tight_layout()
    write_figure_atomic(fig, path)
    plt.close(fig)
