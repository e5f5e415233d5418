"""The FastAPI application: routes, request limits, the API key, CORS and the web page.

Routes: ``POST /v1/detect`` (an image as multipart upload or raw body), ``GET /v1/info``, ``GET /healthz``
(alive), ``GET /readyz`` (model loaded and warmed up), ``GET /metrics`` (Prometheus), ``GET /`` (the page),
``/docs``.
The model loads in the background after start-up, so ``/healthz`` answers at once and ``/readyz`` says when
detection can begin.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..inference.api import DetectOptions, Detector
from .batching import DynamicBatcher, QueueFull
from .config import ServeConfig
from .metrics import ServiceMetrics
from .shutdown import install_drain
from .upload import UploadError, decode_upload

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DETECT_PATH = "/v1/detect"
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'"


@dataclass
class ServiceState:
    """What the routes share: the config, the metrics, and the model once loaded."""

    config: ServeConfig
    metrics: ServiceMetrics
    detector: Detector | None = None
    batcher: DynamicBatcher | None = None
    load_error: str | None = None
    draining: bool = False  # SIGTERM came: new requests get 503 (serve/shutdown.py)


def load_detector(config: ServeConfig) -> Detector:
    return Detector.from_checkpoint(
        config.weights,
        model_name=config.model_name,
        device=config.device,
        fast=config.fuse,
        input_size=config.input_size,
        batch_size=config.max_batch,
        busy_wait=False,  # the runtime's threads share the cores with HTTP and decoding: they must not spin
    )


async def _load(state: ServiceState) -> None:
    """Load the model and warm it up in a thread, then start batching (``/readyz`` turns 200)."""
    config = state.config
    try:
        detector = await run_in_threadpool(load_detector, config)
        batcher = DynamicBatcher(
            detector,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            on_batch=state.metrics.observe_batch,
        )
        await run_in_threadpool(batcher.warm_up)
        await batcher.start()
    except Exception as exc:  # reported by /readyz and the log; the process stays up to say so
        state.load_error = f"{config.weights}: {exc}"
        logger.exception("yoloxdet serve: cannot load %s", config.weights)
        return
    state.detector, state.batcher = detector, batcher
    logger.info("yoloxdet serve: %s ready (batches of up to %d)", detector.info.model_name, config.max_batch)


class BodyLimit:
    """Refuses ``/v1/*`` bodies over ``max_bytes`` with 413: at once from ``Content-Length``, or as soon as a
    streamed (chunked) body passes the limit, before it is all in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: ServiceMetrics) -> None:
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            self.metrics.errors.labels("too_large").inc()  # the status is counted by RequestMetrics, outside
            response = JSONResponse(
                {
                    "detail": f"the body is {int(declared)} bytes, over the limit of {self.max_bytes} "
                    "(--max-bytes)",
                    "kind": "too_large",
                },
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise UploadError(
                    413, "too_large", f"the body is over the limit of {self.max_bytes} bytes (--max-bytes)"
                )
            return message

        await self.app(scope, limited_receive, send)


class Draining:
    """After SIGTERM: ``/v1/*`` requests that were not in progress get 503 "shutting down", and every answer
    closes its connection (the client reconnects elsewhere; here new connections will be refused)."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.state.draining:
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/v1/"):
            self.state.metrics.errors.labels("shutting_down").inc()
            response = JSONResponse(
                {"detail": "the server is shutting down", "kind": "shutting_down"},
                status_code=503,
                headers={"Connection": "close", "Retry-After": "1"},
            )
            await response(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing_send)


class RequestMetrics:
    """Counts ``/v1/detect`` answers by status and times them."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DETECT_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.requests.labels(str(status)).inc()
            self.metrics.latency.observe(time.perf_counter() - started)


def _parse_classes(text: str | None, names: tuple[str, ...]) -> frozenset[int] | None:
    """``"0,2,dog"`` -> class ids; a name or id the model does not have is a 422 naming it."""
    if text is None or not text.strip():
        return None
    ids = set()
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item.isdigit() and int(item) < len(names):
            ids.add(int(item))
        elif item in names:
            ids.add(names.index(item))
        else:
            raise UploadError(
                422,
                "bad_parameter",
                f"classes: {item!r} is not a class id (0-{len(names) - 1}) or name of the model",
            )
    return frozenset(ids)


async def _read_image_bytes(request: Request) -> tuple[bytes, str]:
    """The image from a multipart upload (field ``image`` or ``file``, else the first file) or the raw
    body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return await request.body(), "body"
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException as exc:
        raise UploadError(422, "bad_multipart", f"the multipart body is malformed ({exc.detail})") from None
    try:
        uploads = [
            v for v in (form.get("image"), form.get("file"), *form.values()) if isinstance(v, UploadFile)
        ]
        if not uploads:
            raise UploadError(
                422, "bad_multipart", "the multipart body has no file: send it in a field named 'image'"
            )
        return await uploads[0].read(), uploads[0].filename or "upload"
    finally:
        await form.close()


def _service(request: Request) -> ServiceState:
    return request.app.state.service


def _require_api_key(request: Request) -> None:
    expected = _service(request).config.api_key
    if expected is None:
        return
    given = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        _service(request).metrics.errors.labels("unauthorized").inc()
        raise HTTPException(
            401, "missing or wrong X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"}
        )


def _ready_batcher(state: ServiceState) -> DynamicBatcher:
    if state.batcher is None:
        state.metrics.errors.labels("not_ready").inc()
        raise HTTPException(503, state.load_error or "the model is still loading; see /readyz")
    return state.batcher


router = APIRouter(prefix="/v1", dependencies=[Depends(_require_api_key)])

DETECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/detect",
    openapi_extra=DETECT_BODY,
    responses={
        413: {"description": "body or image too large"},
        415: {"description": "not an image"},
        422: {"description": "corrupt image or bad parameter"},
        503: {"description": "not ready or busy"},
    },
)
async def detect(
    request: Request,
    conf: Annotated[float | None, Query(ge=0.0, le=1.0, description="score threshold obj*cls")] = None,
    iou: Annotated[float | None, Query(ge=0.0, le=1.0, description="NMS IoU threshold")] = None,
    classes: Annotated[str | None, Query(description="comma-separated class ids or names to keep")] = None,
    max_det: Annotated[int | None, Query(ge=1, le=10000, description="keep the best N boxes")] = None,
) -> dict[str, Any]:
    """Detect objects in one image. Boxes are ``[x1, y1, x2, y2]`` in the original image's pixels."""
    started = time.perf_counter()
    state = _service(request)
    batcher = _ready_batcher(state)
    assert state.detector is not None
    params = DetectOptions(conf, iou, _parse_classes(classes, state.detector.names), max_det)
    data, name = await _read_image_bytes(request)
    decode_started = time.perf_counter()
    image = await run_in_threadpool(decode_upload, data, max_pixels=state.config.max_pixels, name=name)
    decode_ms = (time.perf_counter() - decode_started) * 1000
    try:
        dets, timing = await batcher.submit(image, params)
    except QueueFull as exc:
        state.metrics.errors.labels("overloaded").inc()
        raise HTTPException(503, f"busy: {exc}", headers={"Retry-After": "1"}) from None
    answer = dets.to_dict()
    timing.update(decode_ms=decode_ms, total_ms=(time.perf_counter() - started) * 1000)
    return {
        "model": state.detector.info.model_name,
        "input_size": list(state.detector.input_size),
        **answer,
        "timing": {k: round(v, 3) for k, v in timing.items()},
    }


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    """The model's name, classes and input size, the default thresholds and the request limits."""
    state = _service(request)
    _ready_batcher(state)
    detector = state.detector
    assert detector is not None
    return {
        "model": detector.info.model_name,
        "class_names": list(detector.names),
        "input_size": list(detector.input_size),
        "defaults": {"conf": detector.conf_threshold, "iou": detector.nms_iou_threshold},
        "limits": {"max_bytes": state.config.max_bytes, "max_pixels": state.config.max_pixels},
        "max_batch": state.config.max_batch,
    }


def create_app(config: ServeConfig) -> FastAPI:
    """The service for ``config``; the model loads when the app starts (``/readyz`` says when it is ready)."""
    state = ServiceState(config, ServiceMetrics(config.max_batch))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_load(state))
        install_drain(config.drain_s, on_drain=lambda: setattr(state, "draining", True))
        yield
        # uvicorn has stopped accepting and answered in-flight requests; finish what is queued, then stop
        loading.cancel()
        if state.batcher is not None:
            await state.batcher.stop()

    app = FastAPI(
        title="yoloxdet",
        summary="YOLOX object detection over HTTP",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = state
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_routes(app, state)
    _add_error_handlers(app, state)
    app.add_middleware(BodyLimit, max_bytes=config.max_bytes, metrics=state.metrics)
    app.add_middleware(Draining, state=state)
    app.add_middleware(RequestMetrics, metrics=state.metrics)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
        )
    if config.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))
    return app


def _add_routes(app: FastAPI, state: ServiceState) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The model is loaded and warmed up (200), still loading, failed or shutting down (503)."""
        if state.draining:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        if state.batcher is not None:
            return JSONResponse({"status": "ready", "model": state.detector.info.model_name})
        status = "failed" if state.load_error else "loading"
        return JSONResponse({"status": status, "detail": state.load_error}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if state.batcher is not None:
            state.metrics.queue_depth.set(state.batcher.depth)
        return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _add_error_handlers(app: FastAPI, state: ServiceState) -> None:
    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        state.metrics.errors.labels(exc.kind).inc()
        headers = {"Connection": "close"} if exc.status == 413 else None  # the rest of the body is not read
        return JSONResponse({"detail": str(exc), "kind": exc.kind}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        state.metrics.errors.labels("bad_parameter").inc()
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'][1:]) or error['loc'][0]}: {error['msg']}"
            for error in exc.errors()
        )
        return JSONResponse({"detail": problems, "kind": "bad_parameter"}, status_code=422)


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers (``--workers N``): the config comes from ``YOLOXDET_SERVE_CONFIG``."""
    return create_app(ServeConfig.from_env())
