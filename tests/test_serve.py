"""``yoloxdet serve`` as a real process on 127.0.0.1 with the official YOLOX-Nano weights (at 320 px to keep
it cheap): the endpoint contract, batched answers equal to direct ``Detector`` calls, every bad-input case,
the API key, the web page in a real headless chromium, and SIGTERM with requests in flight (last: it stops the
server).

The server batches up to 4 requests and waits up to 2.5 s for them, so 4 concurrent requests share one forward
pass however busy the machine is (the waiting costs no CPU); a lone request therefore takes about 2.5 s.
"""

from __future__ import annotations

import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from _serve_process import CHROMEDRIVER, CHROMIUM, ServerProcess, headless_chromium, upload_on_page

from yoloxdet.inference.api import Detector

KEY = "test-key-123"
HEADERS = {"X-API-Key": KEY}
SIZE = 320
IMAGES = ("000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg")
MAX_BYTES = 600_000
MAX_PIXELS = 2_000_000


@pytest.fixture(scope="module")
def server(nano_onnx, coco128, tmp_path_factory):
    process = ServerProcess(
        str(nano_onnx),
        "--model",
        "yolox-nano",
        "--size",
        str(SIZE),
        "--max-batch",
        "4",
        "--max-wait-ms",
        "2500",
        "--max-bytes",
        str(MAX_BYTES),
        "--max-pixels",
        str(MAX_PIXELS),
        "--api-key",
        KEY,
        log=tmp_path_factory.mktemp("serve") / "server.log",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def detector(nano_onnx):
    return Detector.from_checkpoint(nano_onnx, model_name="yolox-nano", input_size=(SIZE, SIZE))


def _detect(server, content: bytes, *, params=None, multipart=True, headers=HEADERS) -> httpx.Response:
    url = f"{server.url}/v1/detect"
    if multipart:
        return httpx.post(
            url, files={"image": ("x.jpg", content)}, params=params, headers=headers, timeout=60
        )
    return httpx.post(url, content=content, params=params, headers=headers, timeout=60)


def _direct(detector: Detector, path: Path, conf: float, iou: float) -> dict:
    detector.conf_threshold, detector.nms_iou_threshold = conf, iou
    return detector.predict(path)[0].to_dict()


def _assert_same(answer: dict, expected: dict) -> None:
    assert (answer["height"], answer["width"]) == (expected["height"], expected["width"])
    got, want = answer["detections"], expected["detections"]
    assert [d["class_id"] for d in got] == [d["class_id"] for d in want]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a["box_xyxy"], b["box_xyxy"], atol=0.05)
        assert a["score"] == pytest.approx(b["score"], abs=1e-3) and a["class_name"] == b["class_name"]


def test_contract_health_docs_metrics_and_one_detection(server, coco128, detector):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"conf", "iou", "classes", "max_det"} <= {
        p["name"] for p in schema["paths"]["/v1/detect"]["post"]["parameters"]
    }
    assert httpx.get(f"{server.url}/docs").status_code == 200

    path = coco128 / "images" / IMAGES[0]
    with ThreadPoolExecutor(2) as pool:  # together: one wait for the batch instead of two
        multipart = pool.submit(_detect, server, path.read_bytes(), params={"conf": 0.3, "iou": 0.5})
        raw = pool.submit(
            _detect, server, path.read_bytes(), params={"conf": 0.3, "iou": 0.5}, multipart=False
        )
        multipart, raw = multipart.result(), raw.result()
    assert multipart.status_code == raw.status_code == 200, multipart.text
    answer = multipart.json()
    assert answer["model"] == "yolox-nano" and answer["input_size"] == [SIZE, SIZE]
    assert {"decode_ms", "queue_ms", "inference_ms", "total_ms", "batch_size"} <= set(answer["timing"])
    assert answer["detections"], "the official nano finds objects in this image"
    _assert_same(answer, _direct(detector, path, 0.3, 0.5))
    _assert_same(raw.json(), answer)

    metrics = httpx.get(f"{server.url}/metrics").text
    for name in (
        "yoloxdet_requests_total",
        "yoloxdet_errors_total",
        "yoloxdet_request_latency_seconds_bucket",
        "yoloxdet_batch_size_bucket",
        "yoloxdet_queue_depth",
    ):
        assert name in metrics
    assert 'yoloxdet_requests_total{status="200"}' in metrics


def test_concurrent_requests_share_a_batch_and_each_keeps_its_own_options(server, coco128, detector):
    options = [
        {"conf": 0.25, "iou": 0.45},
        {"conf": 0.5, "iou": 0.45},
        {"conf": 0.1, "iou": 0.3},
        {"conf": 0.25, "iou": 0.7},
    ]
    paths = [coco128 / "images" / name for name in IMAGES]
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda a: _detect(server, a[0].read_bytes(), params=a[1]), zip(paths, options))
        )
    for response, path, option in zip(answers, paths, options):
        assert response.status_code == 200, response.text
        assert response.json()["timing"]["batch_size"] == 4  # one forward pass for all four
        _assert_same(response.json(), _direct(detector, path, option["conf"], option["iou"]))


def test_class_filter_and_max_det_apply_per_request(server, coco128, detector):
    path = coco128 / "images" / IMAGES[0]
    everything = _direct(detector, path, 0.1, 0.45)["detections"]
    wanted = {everything[0]["class_name"]}
    with ThreadPoolExecutor(2) as pool:
        filtered = pool.submit(
            _detect, server, path.read_bytes(), params={"conf": 0.1, "classes": ",".join(wanted)}
        )
        capped = pool.submit(_detect, server, path.read_bytes(), params={"conf": 0.1, "max_det": 2})
        filtered, capped = filtered.result().json(), capped.result().json()
    kept = [d for d in everything if d["class_name"] in wanted]
    assert 0 < len(kept) < len(everything)
    _assert_same(filtered, {**filtered, "detections": kept})
    assert [d["class_id"] for d in capped["detections"]] == [d["class_id"] for d in everything[:2]]


def _png_with_header(width: int, height: int, pixel_data: bytes) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB, followed by ``pixel_data`` as its IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel_data) + chunk(b"IEND", b"")


def _bad_requests(coco128: Path) -> list[tuple[str, dict, int, str]]:
    """(name, request kwargs, expected status, a word the message must contain)."""
    good = (coco128 / "images" / IMAGES[1]).read_bytes()
    ok, bomb = cv2.imencode(".png", np.zeros((2000, 2000), np.uint8))  # 4 M pixels in a few kB
    assert ok and len(bomb) < MAX_BYTES
    return [
        ("text", {"content": b"hello, I am not an image"}, 415, "not an image"),
        ("empty", {"content": b""}, 422, "empty"),
        ("corrupt png", {"content": _png_with_header(64, 48, b"garbage" * 50)}, 422, "corrupt"),
        (
            "truncated png",
            {"content": cv2.imencode(".png", np.full((80, 80, 3), 7, np.uint8))[1][:60].tobytes()},
            422,
            "corrupt",
        ),
        ("body too large", {"content": good + b"\0" * MAX_BYTES}, 413, "limit"),
        ("bomb", {"content": bomb.tobytes()}, 413, "pixels"),
        ("bomb header, pixels never decoded", {"content": _png_with_header(4000, 4000, b"x")}, 413, "pixels"),
        ("conf not a number", {"content": good, "params": {"conf": "high"}}, 422, "conf"),
        ("iou out of range", {"content": good, "params": {"iou": 1.5}}, 422, "iou"),
        ("max_det zero", {"content": good, "params": {"max_det": 0}}, 422, "max_det"),
        ("unknown class", {"content": good, "params": {"classes": "dragon"}}, 422, "dragon"),
        ("multipart without a file", {"files": {"note": (None, "no file here")}}, 422, "no file"),
    ]


def test_bad_inputs_fail_alone_with_a_clear_status_and_good_requests_around_them_are_answered(
    server, coco128, detector
):
    path = coco128 / "images" / IMAGES[2]
    expected = _direct(detector, path, 0.25, 0.45)
    bad = _bad_requests(coco128)

    def send_bad(case):
        name, kwargs, status, word = case
        headers = HEADERS if "files" in kwargs else {**HEADERS, "Content-Type": "application/octet-stream"}
        response = httpx.post(f"{server.url}/v1/detect", headers=headers, timeout=60, **kwargs)
        return name, status, word, response

    with ThreadPoolExecutor(6) as pool:  # good requests interleaved with the bad ones
        good = [pool.submit(_detect, server, path.read_bytes()) for _ in range(3)]
        results = list(pool.map(send_bad, bad))
    for name, status, word, response in results:
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert word in response.json()["detail"], f"{name}: {response.json()['detail']}"
    for future in good:
        assert future.result().status_code == 200
        _assert_same(future.result().json(), expected)
    assert server.process.poll() is None and httpx.get(f"{server.url}/healthz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    for kind in ("unsupported_media", "unreadable_image", "too_large", "too_many_pixels", "bad_parameter"):
        assert f'yoloxdet_errors_total{{kind="{kind}"}}' in metrics
    refused = sum(status == 413 for _, status, _, _ in results)
    assert f'yoloxdet_requests_total{{status="413"}} {refused:.1f}' in metrics  # each counted once


def test_streamed_body_over_the_limit_is_refused(server):
    def chunks():
        for _ in range(10):
            yield b"\0" * (MAX_BYTES // 4)

    response = httpx.post(f"{server.url}/v1/detect", content=chunks(), headers=HEADERS, timeout=60)
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_api_key_protects_v1_but_not_health_or_the_page(server, coco128):
    image = (coco128 / "images" / IMAGES[0]).read_bytes()
    assert _detect(server, image, headers={}).status_code == 401
    assert _detect(server, image, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.get(f"{server.url}/v1/info").status_code == 401
    assert httpx.get(f"{server.url}/v1/info", headers=HEADERS).json()["model"] == "yolox-nano"
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]


def test_foreign_host_header_and_cors_are_refused_by_default(server):
    # bound to loopback: a DNS-rebinding page that reaches us under another name gets 400
    assert httpx.get(f"{server.url}/healthz", headers={"Host": "evil.example"}).status_code == 400
    preflight = httpx.options(
        f"{server.url}/v1/detect",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_page_draws_the_boxes_of_the_json_in_headless_chromium(server, coco128, tmp_path):
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make test` installs them)")
    browser = headless_chromium(tmp_path / "profile")
    try:
        answer = upload_on_page(browser, server.url, coco128 / "images" / IMAGES[0], api_key=KEY)
        canvas = browser.find_element(By.ID, "canvas")
        assert answer["model"] == "yolox-nano" and answer["detections"]
        assert int(canvas.get_attribute("data-drawn")) == len(answer["detections"])
        size = (int(canvas.get_attribute("height")), int(canvas.get_attribute("width")))
        assert size == (answer["height"], answer["width"])  # boxes drawn in the image's own pixels
        assert len(browser.find_elements(By.CSS_SELECTOR, "#classes option")) == 80
    finally:
        browser.quit()


def test_sigterm_answers_requests_in_flight_refuses_new_ones_and_exits_0(server, coco128, detector):
    """Runs last: it stops the module's server."""
    path = coco128 / "images" / IMAGES[3]
    expected = _direct(detector, path, 0.25, 0.45)
    with ThreadPoolExecutor(3) as pool:
        in_flight = [pool.submit(_detect, server, path.read_bytes()) for _ in range(3)]
        # the batch waits up to 2.5 s for a 4th request: signal once the three are queued
        while "yoloxdet_queue_depth 3.0" not in httpx.get(f"{server.url}/metrics").text:
            threading.Event().wait(0.02)
        status = server.terminate()
        answers = [f.result() for f in in_flight]
    assert status == 0, server.log.read_text()
    for response in answers:
        assert response.status_code == 200
        _assert_same(response.json(), expected)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=5)
