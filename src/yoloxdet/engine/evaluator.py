"""COCO box evaluation from a COCO-format ground-truth dict and COCO-format detections (reference §6.3).

Any dataset format can be evaluated by converting its ground truth to a COCO dict (``images``, ``annotations``
with ``bbox`` [x, y, w, h], ``area``, ``iscrowd``, ``categories``). Conventions of the official evaluator:

- contiguous class index ``i`` <-> dataset category id ``sorted(category ids)[i]`` (:func:`category_ids`);
- boxes in original-image pixels, rescaled from the letterbox and **not clipped**, written as xywh;
- ``iscrowd`` ground truth is not a target: COCOeval treats it as an ignore region (matches to it are neither
  true nor false positives);
- scoring with faster-coco-eval (the C++ COCOeval, same numbers as pycocotools), pycocotools selectable.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..io import ImageReadError, read_image

logger = logging.getLogger(__name__)

T = TypeVar("T")

SUMMARY_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass(frozen=True)
class CocoMetrics:
    """COCO box metrics. ``stats`` are the 12 numbers of ``COCOeval.summarize`` (-1 where undefined)."""

    stats: tuple[float, ...]
    per_class_ap: dict[str, float] = field(
        default_factory=dict
    )  # AP50:95 per category name; nan: no ground truth
    num_images: int = 0
    num_detections: int = 0

    @property
    def ap(self) -> float:
        return self.stats[0]

    @property
    def ap50(self) -> float:
        return self.stats[1]

    @property
    def ap75(self) -> float:
        return self.stats[2]

    def to_dict(self) -> dict[str, Any]:
        summary = dict(zip(SUMMARY_NAMES, self.stats))
        per_class = {name: (None if math.isnan(ap) else ap) for name, ap in self.per_class_ap.items()}
        return {**summary, "per_class_AP": per_class, "num_images": self.num_images,
                "num_detections": self.num_detections}  # fmt: skip

    def format(self, columns: int = 3) -> str:
        """The summary line and a per-class AP table, as printed by ``yoloxdet val``."""
        head = "  ".join(f"{name} {value:.3f}" for name, value in zip(SUMMARY_NAMES[:6], self.stats))
        cells = [
            f"{name[:18]:<18} {'-' if math.isnan(ap) else f'{ap:.3f}':>5}"
            for name, ap in self.per_class_ap.items()
        ]
        rows = ["   ".join(cells[i : i + columns]) for i in range(0, len(cells), columns)]
        return "\n".join([head, "per-class AP50:95:", *rows])


class ArrayPredictor(Protocol):
    """What :func:`predict_coco_results` needs from a detector (``yoloxdet.Detector`` satisfies it)."""

    batch_size: int

    def predict_arrays(
        self, images_bgr: Sequence[np.ndarray], image_paths: Any = None, *, clip: bool = True
    ) -> list: ...


def category_ids(gt: Mapping[str, Any]) -> list[int]:
    """Dataset category id of every contiguous class index: the sorted ids, as the official COCO dataset."""
    return sorted(int(c["id"]) for c in gt["categories"])


def category_names(gt: Mapping[str, Any]) -> list[str]:
    """Category names in contiguous class-index order."""
    by_id = {int(c["id"]): str(c["name"]) for c in gt["categories"]}
    return [by_id[i] for i in category_ids(gt)]


def to_coco_results(
    image_id: int, boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, cat_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Detections of one image (original pixels, contiguous classes) -> COCO result dicts (xywh, category id).

    From a training loop: ``to_coco_results(image_id, raw.boxes_xyxy.cpu() / ratio, raw.scores.cpu(),
    raw.class_ids.cpu(), category_ids(gt))`` with ``raw`` from ``postprocess.postprocess`` and the
    letterbox ratio.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    return [
        {"image_id": int(image_id), "category_id": int(cat_ids[int(c)]), "bbox": [float(v) for v in box],
         "score": float(s)}
        for box, s, c in zip(xywh, np.asarray(scores), np.asarray(class_ids))
    ]  # fmt: skip


def evaluate_coco(
    gt: Mapping[str, Any], results: Sequence[Mapping[str, Any]], *, engine: str = "faster"
) -> CocoMetrics:
    """Score COCO-format ``results`` against the ground-truth dict ``gt`` over all of its images.

    Args:
        engine: "faster" (faster-coco-eval) or "pycocotools" (the reference implementation; dev dependency).
    """
    gt = copy.deepcopy(dict(gt))  # both libraries add fields to what they are given
    gt.setdefault("info", {})
    gt.setdefault("licenses", [])
    for ann in gt.get("annotations", []):
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
    dets = copy.deepcopy(list(results))
    if engine == "faster" or not dets:  # pycocotools cannot load an empty result list
        evaluator = _faster_eval(gt, dets)
    elif engine == "pycocotools":
        evaluator = _pycocotools_eval(gt, dets)
    else:
        raise ValueError(f"unknown COCO evaluation engine '{engine}'; use 'faster' or 'pycocotools'")
    precision = np.asarray(evaluator.eval["precision"])  # [T iou, R recall, K class, A area, M max dets]
    per_class = {}
    for k, name in enumerate(category_names(gt)):
        valid = precision[:, :, k, 0, -1]
        valid = valid[valid > -1]
        per_class[name] = float(valid.mean()) if valid.size else float("nan")
    stats = tuple(float(v) for v in np.asarray(evaluator.stats)[:12])
    return CocoMetrics(stats, per_class, num_images=len(gt["images"]), num_detections=len(dets))


def _faster_eval(gt: dict, dets: list) -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt, print_function=logger.debug)
    evaluator = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), "bbox", print_function=logger.debug)
    evaluator.run()
    return evaluator


def _pycocotools_eval(gt: dict, dets: list) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def predict_coco_results(
    predictor: ArrayPredictor,
    gt: Mapping[str, Any],
    images: str | Path | Iterable[tuple[int, np.ndarray | None]],
    *,
    progress: bool = True,
    timings: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Run ``predictor`` on the images of ``gt`` and return COCO result dicts (boxes not clipped, as
    official).

    Args:
        images: the folder holding the files named in ``gt["images"]``, or any iterable of
            ``(image_id, BGR image)`` (e.g. :func:`yoloxdet.data.loader.decoded_images`, which decodes in
            parallel); None is skipped.
        timings: filled with the seconds spent waiting for images (``read_images``: decoding not hidden
            behind inference), in ``inference`` (letterbox, forward, NMS) and in ``to_results``.
    An unreadable file is logged (one line naming it) and skipped: it keeps its ground truth, so its objects
    count as missed.
    """
    from tqdm import tqdm

    cat_ids = category_ids(gt)
    samples = folder_samples(gt, images) if isinstance(images, str | Path) else images
    results: list[dict[str, Any]] = []
    spent = dict.fromkeys(("read_images", "inference", "to_results"), 0.0)
    chunks = _chunks(samples, predictor.batch_size)
    with tqdm(total=len(gt["images"]), desc="val", unit="img", disable=not progress) as bar:
        while True:
            start = time.perf_counter()
            chunk = next(chunks, None)
            spent["read_images"] += time.perf_counter() - start
            if chunk is None:
                break
            loaded = [(image_id, image) for image_id, image in chunk if image is not None]
            if loaded:
                image_ids, arrays = zip(*loaded)
                start = time.perf_counter()
                detections = predictor.predict_arrays(arrays, clip=False)
                spent["inference"] += time.perf_counter() - start
                start = time.perf_counter()
                for image_id, dets in zip(image_ids, detections):
                    results.extend(to_coco_results(image_id, dets.xyxy, dets.scores, dets.class_ids, cat_ids))
                spent["to_results"] += time.perf_counter() - start
            bar.update(len(chunk))
    if timings is not None:
        timings.update(spent)
    return results


def folder_samples(gt: Mapping[str, Any], image_dir: str | Path) -> Iterator[tuple[int, np.ndarray | None]]:
    """``(image_id, BGR image)`` for every image of ``gt`` read from ``image_dir``; None (and a warning naming
    the file) for one that cannot be read."""
    for info in gt["images"]:
        path = Path(image_dir) / info.get("file_name", f"{int(info['id']):012}.jpg")
        try:
            yield int(info["id"]), read_image(path)
        except ImageReadError as exc:
            logger.warning("skipping %s", exc)
            yield int(info["id"]), None


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
