"""Dataset checks: catch bad data before it costs a training run.

``check_split`` combines the reader's annotation problems (boxes outside the image, zero/negative size, NaN,
unknown classes, malformed or empty label files, missing images) with image checks that need the pixels:
corrupt or truncated files, EXIF-rotated images and duplicate images. ``checked_dataset`` runs them once per
content hash (annotation files' bytes, image files' names, sizes and mtimes) and drops unreadable images, so
training never dies mid-epoch on one bad file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from yoloxdet.data.datasets import DetectionDataset, build_dataset
from yoloxdet.data.formats import EXIF_ORIENTATION, list_images, yolo_label_path
from yoloxdet.data.records import Issue
from yoloxdet.data.spec import DatasetSpec
from yoloxdet.io import write_figure_atomic, write_json_atomic

logger = logging.getLogger(__name__)
CHECK_VERSION = 1  # bump when the checks change, to invalidate cached results


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
            lines.append(f"box size sqrt(wh)/sqrt(WH): p5 {q[0]:.3f}  median {q[1]:.3f}  p95 {q[2]:.3f}  "
                         f"(~small {small:.0%}, ~large {large:.0%} at 640)")
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


def image_problems(path: Path, expected_wh: tuple[int, int] | None = None) -> list[Issue]:
    """Decode ``path`` fully: corrupt and truncated files are errors; EXIF rotation and a size that differs
    from the annotations' are warnings."""
    issues = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                orientation = im.getexif().get(EXIF_ORIENTATION, 1)
                im.load()  # raises on truncated data (ImageFile.LOAD_TRUNCATED_IMAGES is off)
                size = im.size[::-1] if orientation in (5, 6, 7, 8) else im.size
    except FileNotFoundError:
        return [Issue(path, "image file is missing")]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        reason = "truncated" if "truncated" in str(exc) else "corrupt or not an image"
        return [Issue(path, f"{reason} ({exc}); skipped")]
    if orientation not in (1, None):
        issues.append(Issue(path, f"EXIF orientation {orientation}: pixels are rotated on reading, so its "
                                  "boxes must be given for the rotated image", severity="warning"))
    if expected_wh is not None and tuple(size) != tuple(expected_wh):
        issues.append(Issue(path, f"image is {size[0]}x{size[1]} but the annotations say "
                                  f"{expected_wh[0]}x{expected_wh[1]}", severity="warning"))
    return issues


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return None


def check_images(paths: Iterable[Path], workers: int = 2,
                 sizes_wh: Iterable[tuple[int, int] | None] | None = None) -> tuple[list[Issue], set[Path]]:
    """Decode every image (comparing with the annotated sizes when given) and find duplicates by content;
    returns issues and the unreadable files."""
    paths = list(paths)
    sizes = list(sizes_wh) if sizes_wh is not None else [None] * len(paths)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        per_image = list(pool.map(image_problems, paths, sizes))
        digests = list(pool.map(_file_digest, paths))
    issues = [i for found in per_image for i in found]
    unreadable = {i.path for i in issues if i.severity == "error"}
    first: dict[str, Path] = {}
    for path, digest in zip(paths, digests):
        if digest is None:
            continue
        if digest in first:
            issues.append(Issue(path, f"duplicate of {first[digest]} (same bytes)", severity="warning"))
        else:
            first[digest] = path
    return issues, unreadable


def split_stats(dataset: DetectionDataset) -> SplitStats:
    counts = dataset.class_counts()
    sizes = []
    for rec in dataset.records:
        if len(rec.boxes_xyxy):
            wh = rec.boxes_xyxy[:, 2:] - rec.boxes_xyxy[:, :2]
            sizes.extend((np.sqrt(wh.prod(axis=1)) / np.sqrt(rec.width * rec.height)).tolist())
    return SplitStats(
        images=len(dataset), negatives=sum(1 for r in dataset.records if len(r.labels) == 0),
        boxes_per_class={name: counts.get(i, 0) for i, name in enumerate(dataset.names)}, box_sizes=sizes)


def check_split(spec: DatasetSpec, split: str, workers: int = 2) -> tuple[DetectionDataset, CheckReport]:
    """All checks for one split. Raises only when the description or an annotation file is unreadable."""
    dataset = build_dataset(spec, split)
    image_issues, unreadable = check_images([r.path for r in dataset.records], workers,
                                            [(r.width, r.height) for r in dataset.records])
    report = CheckReport(dataset.issues + image_issues, {split: split_stats(dataset)}, unreadable)
    return dataset, report


def content_hash(spec: DatasetSpec, split: str) -> str:
    """Hash of what the checks depend on: the description, annotation files' bytes, image names/sizes/mtimes."""
    digest = hashlib.sha1(f"v{CHECK_VERSION}|{spec.format}|{split}|{spec.names}|{spec.keep_difficult}".encode())
    files: list[Path] = []
    for source in spec.split(split):
        if source.annotations is not None:
            files.append(source.annotations)
        root = Path(source.images)
        files.extend(sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root])
        if spec.format == "yolo":
            images = list_images(root) if root.exists() else []
            files.extend(label for label in map(yolo_label_path, images) if label.is_file())
            if root.is_file():
                files.extend(p for p in images if p.is_file())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        if path.suffix in (".json", ".txt", ".xml") and stat.st_size < 2**28:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def checked_dataset(spec: DatasetSpec, split: str, cache_dir: str | Path, workers: int = 2) -> DetectionDataset:
    """The dataset with unreadable images removed, checking at most once per content hash.

    Logs one counted warning; the full list is in the cached JSON next to it and from ``yoloxdet check-data``.
    """
    key = content_hash(spec, split)
    cache = Path(cache_dir) / f"check-{split}-{key[:16]}.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        dataset = build_dataset(spec, split)
        unreadable = {Path(p) for p in saved["unreadable"]}
        n_issues = saved["issues"]
    else:
        dataset, report = check_split(spec, split, workers)
        unreadable, n_issues = report.unreadable, len(report.issues)
        write_json_atomic(cache, {"issues": n_issues, "unreadable": sorted(map(str, unreadable)),
                                  "list": [str(i) for i in report.issues]})
    if unreadable:
        dataset.records = [r for r in dataset.records if r.path not in unreadable]
    if n_issues:
        logger.warning("%s (%s split): %d data problem(s), %d unreadable image(s) skipped; details in %s",
                       spec.source or spec.root, split, n_issues, len(unreadable), cache)
    return dataset


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
