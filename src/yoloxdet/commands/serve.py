"""``yoloxdet serve WEIGHTS``: an HTTP detection service with dynamic batching, a web page at ``/`` and
Prometheus metrics (FastAPI + uvicorn; see docs/serving.md)."""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
from pathlib import Path

from ..serve.config import ServeConfig
from .predict import input_size_from_args

HELP = "serve detection over HTTP: POST /v1/detect, a web page at /, /metrics, /docs (dynamic batching)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "weights", help="our .pt checkpoint, an official .pth/.onnx (with --model), an export, or a zoo name"
    )
    parser.add_argument("--model", help="zoo model name for official weights, e.g. yolox-nano")
    parser.add_argument("--size", type=int, nargs="+", metavar="PX", help="input size: one value or H W")
    parser.add_argument("--device", default=None, help="torch device for PyTorch weights (default cpu)")
    parser.add_argument("--no-fuse", action="store_true", help="do not fold BatchNorm into the convs")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own model (default 1)"
    )
    defaults = ServeConfig(weights="")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=defaults.max_batch,
        help=f"most requests per forward pass (default {defaults.max_batch})",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=defaults.max_wait_ms,
        help="how long a request that finds the model idle waits for others to batch with "
        f"(default {defaults.max_wait_ms:g}: none; under load, batches form from what queues up meanwhile)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=defaults.max_queue,
        help=f"waiting requests before 503 (default {defaults.max_queue})",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=defaults.max_bytes,
        help=f"largest request body in bytes (default {defaults.max_bytes / 2**20:g} MiB)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=defaults.max_pixels,
        help=f"largest image, width x height, checked before decoding (default {defaults.max_pixels:,})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("YOLOXDET_API_KEY"),
        help="require this X-API-Key header on /v1/* (default $YOLOXDET_API_KEY; none: open)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from ORIGIN (repeatable); CORS is off without it",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="HOST",
        help="accepted Host headers (repeatable; default: loopback names when bound to loopback)",
    )
    parser.add_argument(
        "--drain-s",
        type=float,
        default=defaults.drain_s,
        help="after SIGTERM, seconds to keep accepting and answer new requests 503 before no longer "
        f"listening (default {defaults.drain_s:g})",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="after the drain, the most seconds to finish requests in flight (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..serve.config import CONFIG_ENV, ServeConfig, default_allowed_hosts

    size = input_size_from_args(args.size)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    weights = Path(args.weights)
    if weights.suffix and not weights.exists():
        raise FileNotFoundError(f"{weights}: no such file")
    config = ServeConfig(
        weights=args.weights,
        model_name=args.model,
        input_size=size,
        device=args.device,
        fuse=not args.no_fuse,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_bytes=args.max_bytes,
        max_pixels=args.max_pixels,
        api_key=args.api_key,
        cors_origins=tuple(args.cors_origin),
        allowed_hosts=tuple(args.allowed_host) if args.allowed_host else default_allowed_hosts(args.host),
        drain_s=args.drain_s,
    )
    options = dict(
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=args.graceful_timeout,
        log_level="info",
        access_log=False,
    )
    # uvicorn answers SIGTERM with a graceful shutdown, then restores the previous handler and raises the
    # signal again: with this one, a requested stop ends with exit status 0 (also before uvicorn has started)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if args.workers == 1:
        from ..serve.app import create_app

        uvicorn.run(create_app(config), **options)
        return 0
    # each worker is a fresh process that builds the app from the environment; metrics are summed over them
    os.environ[CONFIG_ENV] = config.to_env()
    with tempfile.TemporaryDirectory(prefix="yoloxdet-metrics-") as metrics_dir:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        uvicorn.run("yoloxdet.serve.app:create_app_from_env", factory=True, workers=args.workers, **options)
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    # SystemExit, not os._exit: the multi-worker branch must still remove its metrics folder on the way out
    raise SystemExit(0)
