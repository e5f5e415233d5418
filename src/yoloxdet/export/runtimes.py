"""The optional deployment runtimes: whether each is installed here, and the command that installs it.

A missing runtime is found by looking for the real package (and, for TensorRT, a CUDA device), never assumed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch


class MissingRuntimeError(ValueError):
    """A format's runtime is not installed (or needs a device this machine lacks); the message says how.

    A ValueError: the format asked for cannot be served here, and the CLI reports it on one line as such."""


@dataclass(frozen=True)
class Runtime:
    packages: tuple[str, ...]  # importable module names
    install: str
    needs_cuda: bool = False


DEPLOY_EXTRA = "pip install 'yoloxdet[deploy]'"
RUNTIMES = {
    "onnx": Runtime(("onnxruntime",), "pip install onnxruntime"),
    "onnx-int8": Runtime(("onnxruntime", "nncf"), f"{DEPLOY_EXTRA}  (nncf==3.4.0)"),
    "openvino": Runtime(("openvino", "nncf"), f"{DEPLOY_EXTRA}  (openvino==2026.4.1 nncf==3.4.0)"),
    "ncnn": Runtime(("ncnn", "pnnx"), f"{DEPLOY_EXTRA}  (ncnn==1.0.20261020 pnnx==20261020)"),
    "tensorrt": Runtime(
        ("tensorrt",), "pip install tensorrt  (and a CUDA GPU with its driver)", needs_cuda=True
    ),
}


def missing_runtime(fmt: str) -> str | None:
    """Why ``fmt`` cannot run here, with the install command; None when it can."""
    runtime = RUNTIMES[fmt]
    absent = [name for name in runtime.packages if importlib.util.find_spec(name) is None]
    if absent:
        return f"the {fmt} runtime is not installed (no module {', '.join(absent)}): {runtime.install}"
    if runtime.needs_cuda and not torch.cuda.is_available():
        return f"{fmt} needs a CUDA device and none is available here: {runtime.install}"
    return None


def require_runtime(fmt: str, what: str = "") -> None:
    """Raise :class:`MissingRuntimeError` (one line, naming ``what``) when ``fmt`` cannot run here."""
    reason = missing_runtime(fmt)
    if reason is not None:
        raise MissingRuntimeError(f"{what + ': ' if what else ''}{reason}")
