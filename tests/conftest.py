"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent; CI always has it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# pytest-xdist workers (`-n auto` in pyproject.toml) share the cores: each gets its part, and so do the
# processes a test starts, instead of every worker running torch on all of them
_THREADS = max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
torch.set_num_threads(_THREADS)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLOXDET_SHARED", REPO.parent / "shared"))
COCO128 = SHARED / "data" / "coco128"
NANO_ONNX = SHARED / "weights" / "yolox_nano.onnx"


@pytest.fixture(scope="session")
def coco128() -> Path:
    if not (COCO128 / "annotations" / "instances.json").exists():
        pytest.skip(f"coco128 not found at {COCO128} (set YOLOXDET_SHARED)")
    return COCO128


@pytest.fixture(scope="session")
def nano_onnx() -> Path:
    if not NANO_ONNX.exists():
        pytest.skip(f"official yolox_nano.onnx not found at {NANO_ONNX} (set YOLOXDET_SHARED)")
    return NANO_ONNX
