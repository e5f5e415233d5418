"""Which backend serves a deployment file: ``.xml`` (OpenVINO IR), ``.param`` (ncnn), ``.engine`` (TensorRT).

Each runtime is an optional dependency (``pip install 'yoloxdet[deploy]'``); a file whose runtime is missing
fails with one line naming the file and the install command. The runtimes are imported here, inside the branch
that needs them: importing openvino alone takes ~1 s, and most users have none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..export.runtimes import require_runtime

if TYPE_CHECKING:
    from ..weights import CheckpointInfo

DEPLOY_SUFFIXES = {".xml": "openvino", ".param": "ncnn", ".engine": "tensorrt"}


def load_deployed(source: str | Path, *, threads: int | None = None) -> tuple[Any, CheckpointInfo] | None:
    """The backend and info of an OpenVINO / ncnn / TensorRT file written by yoloxdet, else None."""
    path = Path(source)
    fmt = DEPLOY_SUFFIXES.get(path.suffix.lower())
    if fmt is None or not path.is_file():
        return None
    require_runtime(fmt, str(path))
    if fmt == "openvino":
        from .openvino_backend import OpenVinoBackend

        backend: Any = OpenVinoBackend(path, threads=threads)
    elif fmt == "ncnn":
        from .ncnn_backend import NcnnBackend

        backend = NcnnBackend(path, threads=threads)
    else:
        from .tensorrt_backend import TensorRTBackend

        backend = TensorRTBackend(path)
    return backend, backend.info
