"""The demo's real data: aerial tree-crown images shipped in the ``deepforest`` wheel on PyPI.

We download the wheel with pip (``--no-deps``, deepforest itself is never installed), read the PNG images and
their Pascal VOC boxes (class "Tree") out of it, tile the two large Yellowstone images (``2019_YELL_2_*``)
into training tiles, and hold out two other sites (``OSBS_029``, Florida; ``SOAP_061``, California) plus a
strip of the larger YELL image as test sets. SOAP_061's boxes are labelled "Dead" or "Alive"; they are merged
into the one class "Tree" (a crown is a crown, dead or alive). The larger YELL image is also kept whole (image
set ``whole``), to show detection on a full aerial image with ``predict --tile``. The result is an ordinary
VOC dataset folder plus a dataset YAML, so the rest of the demo uses the public commands.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..inference.tiling import tile_origins

logger = logging.getLogger(__name__)

WHEEL_SPEC = "deepforest==2.1.0"
TRAIN_IMAGES = ("2019_YELL_2_528000_4978000_image_crop2", "2019_YELL_2_541000_4977000_image_crop")
STRIP_IMAGE = TRAIN_IMAGES[0]  # the bottom of this image is held out as a same-site test strip
# the cross-site test images and their image sets (each 400 x 400 px at the training tiles' resolution)
CROSS_SITE_IMAGES = {"OSBS_029": "test_osbs", "SOAP_061": "test_soap"}
EXPECTED = tuple(
    f"deepforest/data/{name}.{ext}" for name in (*TRAIN_IMAGES, *CROSS_SITE_IMAGES) for ext in ("png", "xml")
)
CLASS_NAMES = ("Tree",)
MERGED_LABELS = {"Tree": "Tree", "Dead": "Tree", "Alive": "Tree"}  # SOAP_061's labels, merged into one class
# the evaluation sets of the demo's report: name -> image set (per site, and OSBS + SOAP pooled)
EVAL_SETS = {"osbs": "test_osbs", "soap": "test_soap", "cross": "test_cross", "strip": "test_strip"}
EVAL_TITLES = {
    "osbs": "OSBS_029 (another site)",
    "soap": "SOAP_061 (another site)",
    "cross": "OSBS + SOAP pooled (cross-site)",
    "strip": "held-out YELL strip (same site)",
}


@dataclass(frozen=True)
class TileSettings:
    tile: int = 400  # the OSBS test image is 400x400 at the same ground resolution
    stride: int = 300
    strip_rows: int = 400  # height of the held-out strip at the bottom of STRIP_IMAGE
    min_visible: float = 0.5  # keep a clipped box when at least this fraction of its area is inside the tile


def fetch_wheel(cache_dir: Path) -> Path:
    """Download the deepforest wheel into ``cache_dir`` once and check that it holds the files we need."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob("deepforest-2.1.0-*.whl"))
    if not wheels:
        logger.info("downloading %s (no dependencies) into %s", WHEEL_SPEC, cache_dir)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            WHEEL_SPEC,
            "--no-deps",
            "--quiet",
            "-d",
            str(cache_dir),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(cache_dir.glob("deepforest-2.1.0-*.whl"))
        if result.returncode != 0 or not wheels:
            raise RuntimeError(
                f"could not download {WHEEL_SPEC} from PyPI: {result.stderr.strip()[-500:]}\n"
                f"Put deepforest-2.1.0-py3-none-any.whl into {cache_dir} and run again."
            )
    wheel = wheels[-1]
    with zipfile.ZipFile(wheel) as zf:
        missing = [name for name in EXPECTED if name not in zf.namelist()]
    if missing:
        raise RuntimeError(f"{wheel}: missing expected files {missing}; delete it to download again")
    return wheel


def read_voc_boxes(xml_bytes: bytes, source: str) -> np.ndarray:
    """[N, 4] float32 xyxy boxes from a VOC XML document, every label of :data:`MERGED_LABELS` as Tree."""
    root = ET.fromstring(xml_bytes)
    boxes = []
    for obj in root.iter("object"):
        if obj.findtext("name") not in MERGED_LABELS:
            raise ValueError(f"{source}: unexpected class {obj.findtext('name')!r}")
        bb = obj.find("bndbox")
        boxes.append([float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _read_pair(zf: zipfile.ZipFile, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(zf.read(f"deepforest/data/{name}.png"), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"deepforest/data/{name}.png: cannot decode image")
    return image, read_voc_boxes(zf.read(f"deepforest/data/{name}.xml"), f"deepforest/data/{name}.xml")


def crop_boxes(boxes: np.ndarray, x0: int, y0: int, w: int, h: int, min_visible: float) -> np.ndarray:
    """Boxes clipped to the window (x0, y0, w, h), in window coordinates; mostly-outside boxes dropped."""
    shifted = boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
    clipped = np.clip(shifted, 0, [w, h, w, h]).astype(np.float32)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
    keep = visible >= min_visible * np.maximum(area, 1e-6)
    return clipped[keep]


def _voc_xml(filename: str, width: int, height: int, boxes: np.ndarray) -> str:
    objects = "".join(
        "<object><name>Tree</name><difficult>0</difficult><bndbox>"
        f"<xmin>{x1:.0f}</xmin><ymin>{y1:.0f}</ymin><xmax>{x2:.0f}</xmax><ymax>{y2:.0f}</ymax>"
        "</bndbox></object>"
        for x1, y1, x2, y2 in boxes
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
        f"<depth>3</depth></size>{objects}</annotation>\n"
    )


def build_dataset(wheel: Path, out_dir: Path, settings: TileSettings = TileSettings()) -> Path:
    """Write the VOC-layout dataset (tiles, held-out strip, OSBS) and its YAML; return the YAML path."""
    images_dir, ann_dir, sets_dir = (
        out_dir / "JPEGImages",
        out_dir / "Annotations",
        out_dir / "ImageSets" / "Main",
    )
    for d in (images_dir, ann_dir, sets_dir):
        d.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "whole": [], **{s: [] for s in EVAL_SETS.values()}}

    def write(stem: str, image: np.ndarray, boxes: np.ndarray, split: str) -> None:
        cv2.imwrite(str(images_dir / f"{stem}.png"), image)
        (ann_dir / f"{stem}.xml").write_text(_voc_xml(f"{stem}.png", image.shape[1], image.shape[0], boxes))
        splits[split].append(stem)

    t, s = settings.tile, settings.stride
    with zipfile.ZipFile(wheel) as zf:
        for name in TRAIN_IMAGES:
            image, boxes = _read_pair(zf, name)
            h, w = image.shape[:2]
            train_h = h - settings.strip_rows if name == STRIP_IMAGE else h
            for y0 in tile_origins(train_h, t, s):
                for x0 in tile_origins(w, t, s):
                    th, tw = min(t, train_h - y0), min(t, w - x0)
                    crop = image[y0 : y0 + th, x0 : x0 + tw]
                    write(
                        f"{name}_{y0}_{x0}",
                        crop,
                        crop_boxes(boxes, x0, y0, tw, th, settings.min_visible),
                        "train",
                    )
            if name == STRIP_IMAGE:
                write(f"{name}_whole", image, boxes, "whole")
                y0 = train_h
                for x0 in range(0, w, t):  # no overlap: every test box counted once
                    tw = min(t, w - x0)
                    crop = image[y0:h, x0 : x0 + tw]
                    boxes_in = crop_boxes(boxes, x0, y0, tw, h - y0, settings.min_visible)
                    write(f"{name}_strip_{x0}", crop, boxes_in, "test_strip")
        for name, image_set in CROSS_SITE_IMAGES.items():
            image, boxes = _read_pair(zf, name)
            write(name, image, boxes, image_set)
            splits["test_cross"].append(name)

    for split, stems in splits.items():
        (sets_dir / f"{split}.txt").write_text("".join(f"{stem}\n" for stem in stems))
    logger.info("tree crowns: %s", ", ".join(f"{k} {len(v)} images" for k, v in splits.items()))
    return out_dir


def write_dataset_yaml(data_dir: Path, train_set: str = "train") -> Path:
    """The dataset description: training tiles, OSBS + SOAP as ``val`` (other sites), the YELL strip as
    ``test``."""
    return _write_yaml(data_dir, data_dir.name, train_set, "test_cross", "test_strip")


def write_eval_yamls(data_dir: Path) -> dict[str, Path]:
    """One dataset description per evaluation set of :data:`EVAL_SETS` (as its ``val`` split), so that
    ``yoloxdet val`` measures each site alone and the two other sites pooled."""
    return {
        name: _write_yaml(data_dir, f"{data_dir.name}_eval_{name}", None, image_set, None)
        for name, image_set in EVAL_SETS.items()
    }


def _write_yaml(data_dir: Path, stem: str, train: str | None, val: str, test: str | None) -> Path:
    path = data_dir.parent / f"{stem}.yaml"
    lines = [
        "# Aerial tree crowns from the deepforest wheel (written by yoloxdet.demo)",
        "format: voc",
        "root: .",
    ]
    lines += [
        f"{split}: {{dir: {data_dir.name}, set: {image_set}}}"
        for split, image_set in (("train", train), ("val", val), ("test", test))
        if image_set
    ]
    path.write_text("\n".join([*lines, "names: [Tree]"]) + "\n")
    return path


def prepare(wheel: Path, data_dir: Path, settings: TileSettings = TileSettings(), max_tiles: int = 0) -> Path:
    """Build the dataset once (kept between runs) and return its YAML. ``max_tiles`` trains on an evenly
    spread subset of the tiles (image set ``train_subset``), for quick runs."""
    sets = data_dir / "ImageSets" / "Main"
    if not all(
        (sets / f"{image_set}.txt").is_file() for image_set in ("train", "whole", *EVAL_SETS.values())
    ):
        build_dataset(wheel, data_dir, settings)
    if max_tiles <= 0:
        return write_dataset_yaml(data_dir)
    tiles = (sets / "train.txt").read_text().split()
    chosen = tiles[:: max(1, len(tiles) // max_tiles)][:max_tiles]
    (sets / "train_subset.txt").write_text("".join(f"{stem}\n" for stem in chosen))
    return write_dataset_yaml(data_dir, "train_subset")
