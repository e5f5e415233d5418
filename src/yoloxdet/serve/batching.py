"""Dynamic batching: waiting requests are letterboxed to the model's size, run as one forward pass and
answered separately. Each request keeps its own thresholds, class filter and box limit: they are applied per
image after the shared forward pass (the network output does not depend on them).

Batching is continuous: the model never idles while a request waits. When a forward pass ends, everything that
queued up meanwhile (up to ``max_batch``) is the next batch, at once; so batches grow with the load and a lone
request runs alone, without a timer. Only ``max_wait_ms > 0`` makes a request that finds the model idle wait
for company, at most that long from its arrival (on a CPU this only adds latency: a batch of N costs about N
single passes; see docs/serving.md).

The forward pass runs in one dedicated thread, so the event loop keeps reading and decoding requests (the next
batch) while the model works.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..inference.api import DetectOptions, Detector
from ..inference.results import Detections

logger = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """More requests are waiting than the service accepts."""


@dataclass
class _Pending:
    image: np.ndarray
    params: DetectOptions
    future: asyncio.Future[tuple[Detections, dict[str, float]]]
    enqueued: float


@dataclass(frozen=True)
class BatchStats:
    """What one forward pass did, for metrics."""

    size: int
    seconds: float


class DynamicBatcher:
    """Runs waiting requests in batches of up to ``max_batch`` as soon as the model is free (``max_wait_ms``:
    how long a request that finds the model idle may wait for company; 0 = not at all).

    Example (inside a running event loop):
        >>> batcher = DynamicBatcher(detector, max_batch=8, max_wait_ms=5)  # doctest: +SKIP
        >>> await batcher.start()  # doctest: +SKIP
        >>> dets, timing = await batcher.submit(image_bgr, DetectOptions(conf=0.3))  # doctest: +SKIP
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
        self._waiting: deque[_Pending] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yoloxdet-forward")
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a batch is being run
        self._arrived = asyncio.Event()
        self._gathering: list[_Pending] = []
        self._stopping = False  # stop() was called: a batch being gathered waits no longer

    @property
    def depth(self) -> int:
        """Requests waiting for a forward pass (queued, or in the batch being gathered)."""
        return len(self._waiting) + len(self._gathering)

    def warm_up(self) -> None:
        """Run a full batch and a single image once (first-call allocations, lazy init) before serving."""
        image = np.full((*self.detector.input_size, 3), 114, np.uint8)
        for size in sorted({1, self.max_batch}):
            self.detector.predict_batch([image] * size)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="yoloxdet-batcher")

    async def stop(self) -> None:
        """Answer everything already queued (without waiting for company), then stop."""
        self._stopping = True
        self._arrived.set()
        while (self.depth or self._busy) and self._task is not None and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def submit(
        self, image_bgr: np.ndarray, params: DetectOptions
    ) -> tuple[Detections, dict[str, float]]:
        """Queue one image; returns its detections and timings (queue_ms, inference_ms, batch_size)."""
        if self.depth >= self.max_queue:
            raise QueueFull(f"{self.depth} requests are waiting (--max-queue {self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Pending(image_bgr, params, future, time.perf_counter()))
        self._arrived.set()
        return await future

    async def _next_batch(self) -> list[_Pending]:
        """The requests waiting now (up to ``max_batch``); when there are none, the next to arrive."""
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        batch = self._gathering = []
        self._take_waiting(batch)
        if self.max_wait_s > 0:  # company for a batch that is not full, until its first request's deadline
            deadline = batch[0].enqueued + self.max_wait_s
            while (
                len(batch) < self.max_batch
                and not self._stopping
                and (remaining := deadline - time.perf_counter()) > 0
            ):
                self._arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                self._take_waiting(batch)
        return batch

    def _take_waiting(self, batch: list[_Pending]) -> None:
        while self._waiting and len(batch) < self.max_batch:
            batch.append(self._waiting.popleft())

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
                    functools.partial(
                        self.detector.predict_batch,
                        [item.image for item in batch],
                        options=[item.params for item in batch],
                    ),
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
