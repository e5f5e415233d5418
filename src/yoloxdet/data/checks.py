"""Dataset checks: catch bad data before it costs a training run.

``check_split`` combines the reader's annotation problems (boxes outside the image, zero/negative size, NaN,
unknown classes, malformed or empty label files, missing images) with image checks: corrupt or truncated
files, EXIF-rotated images and duplicate images. Image checks run in a process pool over chunks of files and
read headers and end markers (full decoding is ``check-data --decode``): a plain JPEG's header is parsed by
:mod:`yoloxdet.data.headers` (~5x cheaper than PIL), anything else is opened with PIL. ``checked_dataset``
runs them once per content hash (annotation files' bytes, image files' names, sizes and mtimes), drops
unreadable images, so training never dies mid-epoch on one bad file, and saves the checked index so that the
next start loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import multiprocessing
import multiprocessing.context
import os
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from yoloxdet.data.datasets import DetectionDataset, build_dataset
from yoloxdet.data.formats import EXIF_ORIENTATION, collector_paused, list_images, yolo_label_path
from yoloxdet.data.headers import read_jpeg_header
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
    """Check one image with PIL: corrupt and truncated files are errors; EXIF rotation and a size that
    differs from the annotations' are warnings.

    With ``decode=False`` only the header is parsed, plus the end marker of JPEG and PNG files: a file cut
    short lacks it, and only such a file is then decoded to tell truncation from harmless trailing bytes. This
    finds the same problems as full decoding except corruption inside complete files (rare; ``check-data
    --decode`` finds those too). (PIL decodes a PNG whole anyway, to look for an EXIF chunk after the pixels.)
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
                if decode or not _file_ends_with(path, _END_MARKERS.get(im.format or "")):
                    im.load()  # raises on truncated data (ImageFile.LOAD_TRUNCATED_IMAGES is off)
                size = im.size
    except FileNotFoundError:
        return [Issue(path, "image file is missing")]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        reason = "truncated" if "truncated" in str(exc) else "corrupt or not an image"
        return [Issue(path, f"{reason} ({exc}); skipped")]
    return _header_issues(str(path), size, orientation, expected_wh)


def _header_issues(
    path: str, size: tuple[int, int], orientation: int | None, expected_wh: tuple[int, int] | None
) -> list[Issue]:
    """The warnings of a readable image, from its stored size and EXIF orientation."""
    if orientation in (5, 6, 7, 8):
        size = size[::-1]
    issues = []
    if orientation not in (1, None):
        issues.append(
            Issue(
                Path(path),
                f"EXIF orientation {orientation}: pixels are rotated on reading, so its "
                "boxes must be given for the rotated image",
                severity="warning",
            )
        )
    if expected_wh is not None and tuple(size) != tuple(expected_wh):
        issues.append(
            Issue(
                Path(path),
                f"image is {size[0]}x{size[1]} but the annotations say {expected_wh[0]}x{expected_wh[1]}",
                severity="warning",
            )
        )
    return issues


_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}  # EOI; the IEND chunk type and its CRC


def _ends_with(f: BinaryIO, marker: bytes) -> bool:
    """True when the open file ``f`` ends with ``marker``."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - len(marker)))
    return f.read() == marker


def _file_ends_with(path: Path, marker: bytes | None) -> bool:
    if marker is None:
        return True
    with open(path, "rb") as f:
        return _ends_with(f, marker)


HEAD_BYTES = 16384  # read first from every image: its header, and a fingerprint for finding duplicates
_NO_FILE = (-1, -1, -1, -1)


def _check_file(path: str, expected_wh: tuple[int, int] | None, decode: bool) -> tuple[list[Issue], tuple]:
    """Issues of one image and its identity: (size, device, inode, crc32 of the first 16 KiB), or -1s when
    it cannot be opened. A plain JPEG's header is parsed here (see :mod:`yoloxdet.data.headers`); every
    other file, and a JPEG that lacks its end marker, goes to PIL."""
    identity = _NO_FILE
    try:
        with open(path, "rb", buffering=0) as f:  # a few exact reads: no buffer to fill
            st = os.fstat(f.fileno())
            head = f.read(HEAD_BYTES)
            identity = (st.st_size, st.st_dev, st.st_ino, zlib.crc32(head))
            header = None if decode else read_jpeg_header(f, head)
            if header is not None and _ends_with(f, _END_MARKERS["JPEG"]):
                size = (header.width, header.height)
                return _header_issues(path, size, header.orientation, expected_wh), identity
    except OSError:
        pass  # PIL names the problem
    return image_problems(Path(path), expected_wh, decode), identity


def _check_chunk(
    paths: list[str], sizes_wh: list[tuple[int, int] | None], decode: bool
) -> tuple[dict[int, list[Issue]], np.ndarray]:
    """Checks of consecutive images (one task of the process pool): the issues of the files that have any,
    by position in the chunk, and an ``[n, 4]`` array of the files' identities (see :func:`_check_file`)."""
    found, identities = {}, []
    for k, (path, size) in enumerate(zip(paths, sizes_wh)):
        issues, identity = _check_file(path, size, decode)
        if issues:
            found[k] = issues
        identities.append(identity)
    return found, np.asarray(identities, np.int64).reshape(-1, 4)


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest()
    except OSError:
        return None


def _duplicates(paths: list[str], identities: np.ndarray, workers: int) -> list[Issue]:
    """Files with the same bytes, each named with the first of them, reading few files again: one inode is
    one content; an inode whose size and first 16 KiB no other inode has is unique; the rest are told apart
    by a hash of their whole content."""
    readable = np.flatnonzero(identities[:, 0] >= 0)
    ident = identities[readable]
    if not len(ident):
        return []
    _, inode_first, inode_of = np.unique(ident[:, 1:3], axis=0, return_index=True, return_inverse=True)
    _, print_of, print_count = np.unique(
        ident[inode_first][:, [0, 3]], axis=0, return_inverse=True, return_counts=True
    )
    content = np.arange(len(inode_first))  # a content label per inode; unique unless shown otherwise
    shared = np.flatnonzero(print_count[print_of.reshape(-1)] > 1)  # inodes another one might equal
    with ThreadPoolExecutor(max(1, workers)) as pool:  # file reads and sha1 release the GIL
        digests = list(pool.map(_digest, [paths[readable[inode_first[i]]] for i in shared]))
    first_inode_of: dict[str, int] = {}
    for inode, digest in zip(shared.tolist(), digests):
        if digest is not None:
            content[inode] = first_inode_of.setdefault(digest, inode)
    label = content[inode_of.reshape(-1)]  # per readable file
    _, first_of_label, label_of = np.unique(label, return_index=True, return_inverse=True)
    first = first_of_label[label_of.reshape(-1)]
    repeats = np.flatnonzero(first != np.arange(len(label)))
    messages: dict[int, str] = {}  # one per content, naming its first file
    issues = []
    for k, f in zip(repeats.tolist(), first[repeats].tolist()):
        if f not in messages:
            messages[f] = f"duplicate of {Path(paths[readable[f]])} (same bytes)"
        issues.append(Issue(Path(paths[readable[k]]), messages[f], severity="warning"))
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
    timings: dict[str, float] | None = None,
) -> tuple[list[Issue], np.ndarray]:
    """Check every image (see :func:`_check_file`) and find duplicates by content, in a process pool of
    ``workers`` (default: the CPUs) fed with chunks of images. Returns the issues in file order (exactly
    those of a serial run) and a mask of the unreadable files; adds the seconds of each stage to
    ``timings``."""
    paths = [str(p) for p in paths]
    sizes = list(sizes_wh) if sizes_wh is not None else [None] * len(paths)
    workers = default_check_workers() if workers is None else max(1, workers)
    chunk = max(16, min(512, math.ceil(len(paths) / (8 * workers))))  # ~8 tasks a worker: balanced, few
    spans = [(a, min(a + chunk, len(paths))) for a in range(0, len(paths), chunk)]
    results: list = [None] * len(spans)
    with (
        _timed(timings, "image checks"),
        tqdm(total=len(paths), desc="checking images", unit="img", disable=not progress) as bar,
    ):
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
    issues, unreadable = [], np.zeros(len(paths), bool)
    for (a, _), (found, _) in zip(spans, results):
        for k, file_issues in sorted(found.items()):
            issues += file_issues
            unreadable[a + k] = any(i.severity == "error" for i in file_issues)
    identities = np.concatenate([ident for _, ident in results]) if results else np.zeros((0, 4), np.int64)
    with _timed(timings, "duplicates"):
        issues += _duplicates(paths, identities, workers)
    return issues, unreadable.reshape(-1)


@contextlib.contextmanager
def _timed(timings: dict[str, float] | None, stage: str) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[stage]`` (when timings are wanted)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


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
    spec: DatasetSpec,
    split: str,
    workers: int | None = None,
    *,
    decode: bool = False,
    progress: bool = False,
    timings: dict[str, float] | None = None,
) -> tuple[DetectionDataset, CheckReport]:
    """All checks for one split (image headers, or every pixel with ``decode``). Raises only when the
    description or an annotation file is unreadable. Adds the seconds of each stage to ``timings``."""
    with collector_paused():
        with _timed(timings, "read annotations"):
            dataset = build_dataset(spec, split)
        index = dataset.records
        image_issues, bad = check_files(
            [index.paths[i] for i in range(len(index))],
            [index.size_wh(i) for i in range(len(index))],
            workers=workers,
            decode=decode,
            progress=progress,
            timings=timings,
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
    files: list[tuple[str, os.stat_result]] = []
    for source in spec.split(split):
        named = [] if source.annotations is None else [str(source.annotations)]
        root = Path(source.images)
        if root.is_dir():
            files.extend(sorted(_walk_files(str(root)), key=lambda item: item[0]))
        else:
            named.append(str(root))
        if spec.format == "yolo":
            images = list_images(root) if root.exists() else []
            named.extend(str(label) for label in map(yolo_label_path, images) if label.is_file())
            if root.is_file():
                named.extend(str(p) for p in images if p.is_file())
        files.extend((path, os.stat(path)) for path in named)
    for path, stat in files:
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        if path.endswith((".json", ".txt", ".xml")) and stat.st_size < 2**28:
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def _walk_files(folder: str) -> Iterator[tuple[str, os.stat_result]]:
    """Files under ``folder`` and their stat, following links (as ``Path.is_file``): one stat per entry."""
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                stat = entry.stat()
            except OSError:  # a broken link
                continue
            if S_ISDIR(stat.st_mode):
                yield from _walk_files(entry.path)
            elif S_ISREG(stat.st_mode):
                yield entry.path, stat


def checked_dataset(
    spec: DatasetSpec,
    split: str,
    cache_dir: str | Path,
    workers: int | None = None,
    progress: bool = True,
    timings: dict[str, float] | None = None,
) -> DetectionDataset:
    """The dataset with unreadable images removed, checking at most once per content hash.

    The first time, image headers are checked in a process pool of ``workers`` (default: the CPUs), with a
    progress bar; the checked index of records is saved next to the results, so that a later start with the
    same content reads neither the annotations nor any image. Logs one counted warning; the full list is in
    the cached JSON next to it and from ``yoloxdet check-data``. Adds the seconds of each stage to
    ``timings``.
    """
    with collector_paused():  # the first start makes one issue per problem, one stat per file
        with _timed(timings, "content hash"):
            key = content_hash(spec, split)
        cache = Path(cache_dir) / f"check-{split}-{key[:16]}.json"
        saved_index = cache.with_suffix(".npz")
        with _timed(timings, "load saved index"):
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
            dataset, report = check_split(spec, split, workers, progress=progress, timings=timings)
            n_unreadable, n_issues = len(report.unreadable), len(report.issues)
            with _timed(timings, "save index and issues"):
                if report.unreadable:
                    keep = [
                        i for i in range(len(dataset)) if dataset.records.path(i) not in report.unreadable
                    ]
                    dataset.records = dataset.records.take(np.asarray(keep, np.int64))
                # the index first: the JSON marks a complete entry
                write_bytes_atomic(saved_index, dataset.records.to_bytes())
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
