"""The dynamic batcher in-process on a real ``Detector`` (official YOLOX-Nano at 320 px): batching is
continuous (what queued up during a forward pass runs next, at once; a lone request runs alone), a full batch
does not wait out ``max_wait_ms``, ``stop`` answers a batch still gathering, and every answer equals a direct
``Detector`` call with the request's own options."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from yoloxdet.inference.api import DetectOptions, Detector
from yoloxdet.io import read_image
from yoloxdet.serve.batching import DynamicBatcher

SIZE = 320
IMAGES = ("000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg")
OPTIONS = (DetectOptions(), DetectOptions(conf=0.5), DetectOptions(iou=0.3), DetectOptions(max_det=2))


@pytest.fixture(scope="module")
def detector(nano_onnx):
    return Detector.from_checkpoint(nano_onnx, model_name="yolox-nano", input_size=(SIZE, SIZE))


@pytest.fixture(scope="module")
def images(coco128):
    return [read_image(coco128 / "images" / name) for name in IMAGES]


def _assert_equal_to_direct(detector, image, options, dets) -> None:
    [direct] = detector.predict_batch([image], options=[options])
    assert dets.class_ids.tolist() == direct.class_ids.tolist()
    np.testing.assert_allclose(dets.xyxy, direct.xyxy, atol=1e-3)
    np.testing.assert_allclose(dets.scores, direct.scores, atol=1e-5)


async def _until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the batcher did not get there in time"
        await asyncio.sleep(0.001)


def test_requests_queued_during_a_forward_pass_run_next_as_one_batch(detector, images):
    async def scenario():
        batcher = DynamicBatcher(detector, max_batch=8, max_wait_ms=0)
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.submit(images[0], OPTIONS[0]))
            await _until(lambda: batcher._busy)  # the lone first request is running, without a timer
            rest = [asyncio.create_task(batcher.submit(i, o)) for i, o in zip(images[1:], OPTIONS[1:])]
            return await first, await asyncio.gather(*rest)
        finally:
            await batcher.stop()

    (first_dets, first_timing), rest = asyncio.run(scenario())
    assert first_timing["batch_size"] == 1
    assert [timing["batch_size"] for _, timing in rest] == [3, 3, 3]
    _assert_equal_to_direct(detector, images[0], OPTIONS[0], first_dets)
    for image, options, (dets, _) in zip(images[1:], OPTIONS[1:], rest):
        _assert_equal_to_direct(detector, image, options, dets)


def test_a_full_batch_runs_without_waiting_out_max_wait(detector, images):
    async def scenario():
        batcher = DynamicBatcher(detector, max_batch=3, max_wait_ms=60_000)
        await batcher.start()
        try:
            started = time.perf_counter()
            answers = await asyncio.gather(*(batcher.submit(image, DetectOptions()) for image in images[:3]))
            return answers, time.perf_counter() - started
        finally:
            await batcher.stop()

    answers, seconds = asyncio.run(scenario())
    assert [timing["batch_size"] for _, timing in answers] == [3, 3, 3]
    assert seconds < 30  # far below the 60 s a batch may wait for company


def test_stop_answers_a_batch_still_gathering_company(detector, images):
    async def scenario():
        batcher = DynamicBatcher(detector, max_batch=8, max_wait_ms=60_000)
        await batcher.start()
        pending = [asyncio.create_task(batcher.submit(image, DetectOptions())) for image in images[:2]]
        await _until(lambda: len(batcher._gathering) == 2)  # waiting for up to 60 s for more
        started = time.perf_counter()
        await batcher.stop()
        return [task.result() for task in pending], time.perf_counter() - started

    answers, seconds = asyncio.run(scenario())
    assert seconds < 30
    for image, (dets, timing) in zip(images[:2], answers):
        assert timing["batch_size"] == 2
        _assert_equal_to_direct(detector, image, DetectOptions(), dets)
