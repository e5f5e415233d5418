"""The settings of one ``yoloxdet serve`` process, passed to uvicorn workers as JSON in an environment
variable
(each worker is a fresh process that imports the app factory and loads its own model)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

CONFIG_ENV = "YOLOXDET_SERVE_CONFIG"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    """What to serve and how.

    Attributes:
        weights: anything ``Detector.from_checkpoint`` loads (checkpoint, official .pth/.onnx, export, zoo
        name). model_name: zoo name for official weights without metadata. input_size: (h, w) letterbox size;
        default the model's. device: torch device for PyTorch weights. fuse: fold BatchNorm into the convs
        (PyTorch weights). max_batch: the most requests run as one forward pass. max_wait_ms: how long a
        request that finds the model idle waits for company (0: it runs at once; under load batches form
        anyway from the requests that queue up during a forward pass). max_queue: requests waiting beyond this
        are refused with 503. max_bytes: the largest request body. max_pixels: the largest image (width x
        height), checked from the header before decoding. api_key: when set, ``/v1/*`` needs the header
        ``X-API-Key`` with this value. cors_origins: origins allowed by CORS; none means CORS is off.
        allowed_hosts: ``Host`` headers accepted (DNS-rebinding guard); empty means any. drain_s: after
        SIGTERM, how long the service keeps accepting connections and answers new requests 503 "shutting
        down" before it stops listening (serve/shutdown.py).
    """

    weights: str
    model_name: str | None = None
    input_size: tuple[int, int] | None = None
    device: str | None = None
    fuse: bool = True
    max_batch: int = 8
    max_wait_ms: float = 0.0
    max_queue: int = 256
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    api_key: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    drain_s: float = 1.0

    def __post_init__(self) -> None:
        checks = {
            "max_batch": self.max_batch >= 1,
            "max_wait_ms": self.max_wait_ms >= 0,
            "max_queue": self.max_queue >= 1,
            "max_bytes": self.max_bytes >= 1,
            "max_pixels": self.max_pixels >= 1,
            "drain_s": self.drain_s >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise RuntimeError(f"{CONFIG_ENV} is not set: start the service with `yoloxdet serve`")
        values = json.loads(raw)
        for key in ("input_size", "cors_origins", "allowed_hosts"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def default_allowed_hosts(host: str) -> tuple[str, ...]:
    """Bound to loopback, only loopback names are valid ``Host`` headers (a rebinding page cannot reach us);
    bound elsewhere, any."""
    return LOCAL_HOSTS if host in LOCAL_HOSTS else ()
