"""Training checkpoints: ``weights_only`` reads, everything needed to resume bit for bit. The format tag and
the atomic writer are ``yoloxdet.weights``' (which also loads these files as inference weights).

Layout (a plain dict of tensors and primitives, so ``torch.load(weights_only=True)`` reads it)::

    format        TRAIN_FORMAT ("yoloxdet-train/1")
    model         the weights to use for inference: the EMA copy when EMA is on (as official)
    train_model   the raw (non-EMA) weights being optimised
    ema           {"module", "updates", "decay"} or None
    optimizer     optimizer.state_dict()
    scaler        GradScaler.state_dict() or None
    state         TrainState as a dict (epoch, iteration, batch in epoch, best AP, history, ...)
    rng           {"torch": ByteTensor, "cuda": ByteTensor of the current GPU (once CUDA is used),
                   "ranks": [the same per process] under DDP}
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
        raise ValueError(
            f"{path}: not a yoloxdet training checkpoint (no '{TRAIN_FORMAT}' format tag); "
            "use it as initial weights (train.weights=...) instead of --resume"
        )
    return payload


def rng_state() -> dict[str, Any]:
    """This process's RNG states: the CPU generator and, once CUDA is in use, the current device's generator
    only (one process per GPU: the other GPUs' generators belong to other processes)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any], rank: int = 0) -> None:
    """Restore what :func:`rng_state` saved: this rank's entry of ``ranks`` when the checkpoint has one (DDP),
    else the top-level state. Works with fewer (or no) visible GPUs than at save time."""
    ranks = state.get("ranks") or []
    if rank < len(ranks):
        state = ranks[rank]
    torch.set_rng_state(state["torch"])
    cuda_state = state.get("cuda")
    if cuda_state is None or not torch.cuda.is_available():
        return
    if isinstance(cuda_state, list | tuple):  # older checkpoints: one state per visible GPU
        cuda_state = cuda_state[min(torch.cuda.current_device(), len(cuda_state) - 1)]
    torch.cuda.set_rng_state(cuda_state)
