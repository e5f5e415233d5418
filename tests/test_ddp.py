"""Two-process DDP (gloo, CPU) ends where single-process training on the same global batch ends.

The single process sees every global batch as the two per-rank halves in turn, with gradient accumulation 2:
its gradient is the mean of the halves' gradients, which is what DDP all-reduces. Only the summation order
differs, so parameters agree within float tolerance. (BN running statistics are per process under DDP and are
not compared; they are averaged before evaluation.)
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _synthetic_train import SyntheticLoader, make_trainer

from yoloxdet.engine.ema import unwrap

WORLD = 2
EPOCHS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        trainer = make_trainer(SyntheticLoader(rank=rank, world_size=WORLD), epochs=EPOCHS)
        assert isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)
        trainer.fit()
        torch.save({k: v.clone() for k, v in unwrap(trainer.model).named_parameters()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_matches_single_process_accumulation(tmp_path: Path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out = str(tmp_path / "params")
    mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD, join=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # as the workers: a different kernel split changes rounding, which SimOTA amplifies
    try:
        single = make_trainer(SyntheticLoader(split=WORLD), accumulate=WORLD, epochs=EPOCHS)
        single.fit()
    finally:
        torch.set_num_threads(threads)
    start = make_trainer(SyntheticLoader(split=WORLD), accumulate=WORLD, epochs=EPOCHS)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(WORLD)]
    moved = 0.0
    for name, param in single.model.named_parameters():
        for r in range(WORLD):
            torch.testing.assert_close(ranks[r][name], param.detach(), rtol=1e-4, atol=1e-5, msg=name)
        moved = max(moved, float((param - dict(start.model.named_parameters())[name]).detach().abs().max()))
    assert moved > 1e-3  # training moved the weights, so agreement is meaningful
