"""Dynamic batching: requests that arrive within ``max_wait_ms`` of each other are letterboxed to the model's
size, run as one forward pass and answered separately. Each request keeps its own thresholds, class filter and
box limit: they are applied per image after the shared forward pass (the network output does not depend on
them).

The forward pass runs in one dedicated thread, so the event loop keeps reading requests (and queueing the next
batch) while the model works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..data.transforms import letterbox, to_chw_float
from ..inference.api import Detector
from ..inference.results import Detections
from ..ops.nms import postprocess

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectParams:
    """Per-request options; ``None`` means the detector's default."""

    conf: float | None = None
    iou: float | None = None
    classes: frozenset[int] | None = None
    max_det: int | None = None


def detect_batch(
    detector: Detector, images_bgr: Sequence[np.ndarray], params: Sequence[DetectParams]
) -> list[Detections]:
    """One forward pass over ``images_bgr``, then each image's own score filter, NMS, class filter and cap.

    Equals ``detector.predict_arrays([image])`` with that request's thresholds, image by image.
    """
    canvases, ratios = zip(*(letterbox(image, detector.input_size) for image in images_bgr))
    decoded = detector.backend(
        torch.from_numpy(np.stack([to_chw_float(c) for c in canvases]))
    )  # [B, A, 5 + C]
    results = []
    for index, (image, ratio, options) in enumerate(zip(images_bgr, ratios, params)):
        conf = detector.conf_threshold if options.conf is None else options.conf
        iou = detector.nms_iou_threshold if options.iou is None else options.iou
        [raw] = postprocess(decoded[index : index + 1], conf, iou, detector.class_agnostic)
        keep = torch.arange(len(raw.scores))
        if options.classes is not None:  # after class-aware NMS, filtering equals filtering before it
            keep = keep[torch.isin(raw.class_ids.cpu(), torch.tensor(sorted(options.classes)))]
        if options.max_det is not None:
            keep = keep[: options.max_det]  # NMS output is sorted by score
        height, width = image.shape[:2]
        boxes = raw.boxes_xyxy[keep].float().cpu() / ratio  # top-left padding: no offset to undo
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        results.append(
            Detections(
                xyxy=boxes.numpy(),
                scores=raw.scores[keep].float().cpu().numpy(),
                class_ids=raw.class_ids[keep].cpu().numpy().astype(np.int64),
                names=detector.names,
                orig_shape=(height, width),
            )
        )
    return results


class QueueFull(RuntimeError):
    """More requests are waiting than the service accepts."""


@dataclass
class _Pending:
    image: np.ndarray
    params: DetectParams
    future: asyncio.Future[tuple[Detections, dict[str, float]]]
    enqueued: float


@dataclass(frozen=True)
class BatchStats:
    """What one forward pass did, for metrics."""

    size: int
    seconds: float


class DynamicBatcher:
    """Collects requests into batches of up to ``max_batch``, waiting at most ``max_wait_ms`` after the first.

    Example (inside a running event loop):
        >>> batcher = DynamicBatcher(detector, max_batch=8, max_wait_ms=5)  # doctest: +SKIP
        >>> await batcher.start()  # doctest: +SKIP
        >>> dets, timing = await batcher.submit(image_bgr, DetectParams(conf=0.3))  # doctest: +SKIP
    """

    def __init__(
        self,
        detector: Detector,
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int = 256,
        on_batch=None,
    ) -> None:
        self.detector = detector
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch  # called with BatchStats after every forward pass
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yoloxdet-forward")
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a batch is being run
        self._arrived = asyncio.Event()
        self._gathering: list[_Pending] = []

    @property
    def depth(self) -> int:
        """Requests waiting for a forward pass (queued, or in the batch being gathered)."""
        return self._queue.qsize() + len(self._gathering)

    def warm_up(self) -> None:
        """Run a full batch and a single image once (first-call allocations, lazy init) before serving."""
        image = np.full((*self.detector.input_size, 3), 114, np.uint8)
        for size in sorted({1, self.max_batch}):
            detect_batch(self.detector, [image] * size, [DetectParams()] * size)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="yoloxdet-batcher")

    async def stop(self) -> None:
        """Answer everything already queued, then stop."""
        while (self._queue.qsize() or self._busy) and self._task is not None and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def submit(
        self, image_bgr: np.ndarray, params: DetectParams
    ) -> tuple[Detections, dict[str, float]]:
        """Queue one image; returns its detections and timings (queue_ms, inference_ms, batch_size)."""
        if self.depth >= self.max_queue:
            raise QueueFull(f"{self.depth} requests are waiting (--max-queue {self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(image_bgr, params, future, time.perf_counter()))
        self._arrived.set()
        return await future

    async def _next_batch(self) -> list[_Pending]:
        batch = self._gathering = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():  # requests that queued up during the last forward pass join at once
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            # wait on an event, not on queue.get(): a get cancelled by a timeout can lose its item
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            self._gathering, self._busy = [], True
            try:
                await self._answer(loop, [item for item in batch if not item.future.cancelled()])
            finally:
                self._busy = False

    async def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        """Run one batch and settle its futures (cancelled ones, whose client went away, are left out)."""
        if batch:
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    self._executor,
                    detect_batch,
                    self.detector,
                    [item.image for item in batch],
                    [item.params for item in batch],
                )
            except Exception as exc:  # a failing forward pass fails its batch, not the service
                logger.exception("forward pass over %d images failed", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                return
            seconds = time.perf_counter() - started
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(batch), seconds))
            for item, dets in zip(batch, results):
                if not item.future.done():
                    timing = {
                        "queue_ms": (started - item.enqueued) * 1000,
                        "inference_ms": seconds * 1000,
                        "batch_size": len(batch),
                    }
                    item.future.set_result((dets, timing))
