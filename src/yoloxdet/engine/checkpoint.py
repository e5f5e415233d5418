"""Training checkpoints: ``weights_only`` reads, everything needed to resume bit for bit. The format tag and the
atomic writer are ``yoloxdet.weights``' (which also loads these files as inference weights).

Layout (a plain dict of tensors and primitives, so ``torch.load(weights_only=True)`` reads it)::

    format        TRAIN_FORMAT ("yoloxdet-train/1")
    model         the weights to use for inference: the EMA copy when EMA is on (as official)
    train_model   the raw (non-EMA) weights being optimised
    ema           {"module", "updates", "decay"} or None
    optimizer     optimizer.state_dict()
    scaler        GradScaler.state_dict() or None
    state         TrainState as a dict (epoch, iteration, batch in epoch, best AP, history, ...)
    rng           {"torch": ByteTensor}
    config        the resolved run configuration (plain dict)
    class_names   list[str]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..weights import TRAIN_FORMAT, save_atomic

logger = logging.getLogger(__name__)
__all__ = ["TRAIN_FORMAT", "load_training_checkpoint", "restore_rng_state", "rng_state", "save_atomic"]


def load_training_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the trainer; a clear one-line error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != TRAIN_FORMAT:
        raise ValueError(f"{path}: not a yoloxdet training checkpoint (no '{TRAIN_FORMAT}' format tag); "
                         "use it as initial weights (train.weights=...) instead of --resume")
    return payload


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
