"""Distributed helpers: torchrun environment, DDP wrapping, reductions. Everything degrades to a no-op in a
single process, so the trainer has one code path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def current() -> DistInfo:
    """Rank and world size of the initialised process group (or a single process)."""
    if not is_initialized():
        return DistInfo()
    return DistInfo(
        dist.get_rank(),
        dist.get_world_size(),
        int(os.environ.get("LOCAL_RANK", 0)),
        int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    )


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); nccl on CUDA, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or is_initialized():
        return current()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return current()


def wrap_model(model: nn.Module, info: DistInfo, *, sync_bn: bool = False) -> nn.Module:
    """DistributedDataParallel (optionally with SyncBatchNorm) when distributed; the model itself otherwise.

    Buffers are not broadcast from rank 0 at every forward: BN running statistics stay per process and are
    averaged before evaluation (official ``all_reduce_norm``)."""
    if not info.distributed:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    if is_initialized():
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is True on any process (so every process takes the same branch)."""
    if not is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def max_over_ranks(values: Sequence[torch.Tensor | float | bool], device: torch.device) -> list[float]:
    """Element-wise maximum of ``values`` (flags count as 0/1) over processes: one all-reduce, one host
    read."""
    host = [0.0 if isinstance(v, torch.Tensor) else float(v) for v in values]
    row = torch.tensor(host, dtype=torch.float64).to(device, non_blocking=True)
    for i, value in enumerate(values):
        if isinstance(value, torch.Tensor):
            row[i] = value  # a device-side copy: no host sync before the single read below
    if is_initialized():
        dist.all_reduce(row, op=dist.ReduceOp.MAX)
    return row.tolist()


@torch.no_grad()
def all_reduce_norm_(model: nn.Module) -> None:
    """Average the normalisation-layer running statistics over processes (official ``all_reduce_norm``)."""
    if not is_initialized():
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in (module.running_mean, module.running_var):
                all_reduce_mean_(buffer)


def gather_lists(items: list[Any]) -> list[Any]:
    """Concatenate every process's ``items`` (picklable), in rank order, on every process."""
    if not is_initialized():
        return list(items)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part]


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_initialized():
        dist.barrier()
