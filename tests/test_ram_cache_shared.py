"""``data.cache=ram`` under torchrun keeps one copy of the decoded images per machine (two gloo processes,
CPU).

Local rank 0 decodes and writes one file in shared memory; both ranks then serve the cache from read-only
views of that one mapping, and the file is gone afterwards."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import numpy as np
import torch.distributed as dist
import torch.multiprocessing as mp
from _shapes_data import write_shapes_dataset

from yoloxdet.data.datasets import build_dataset, resize_to_fit
from yoloxdet.data.spec import load_dataset_spec
from yoloxdet.engine import distributed as dist_utils
from yoloxdet.engine.session import share_ram_cache
from yoloxdet.io import read_image

WORLD = 2
SIZE_HW = (48, 64)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cache_files() -> set[Path]:
    return {p for d in ("/dev/shm", tempfile.gettempdir()) for p in Path(d).glob("yoloxdet-ram-cache-*")}


def _worker(rank: int, port: int, data_yaml: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD)
    )
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        dataset = build_dataset(load_dataset_spec(data_yaml), "train")
        before = _cache_files()
        share_ram_cache(dataset, SIZE_HW, dist_utils.current(), workers=2)
        dist_utils.barrier()  # rank 0 has unlinked the file when share_ram_cache returns there
        after = _cache_files()
        served = [dataset.load_resized(i, SIZE_HW)[0] for i in range(len(dataset))]
        expected = [resize_to_fit(read_image(dataset.records.path(i)), SIZE_HW) for i in range(len(dataset))]
        report = {
            "equal": all(np.array_equal(a, b) for a, b in zip(served, expected)),
            "mapped": all(isinstance(a.base, np.memmap) or isinstance(a, np.memmap) for a in served),
            "read_only": not any(a.flags.writeable for a in served),
            "count": len(served),
            "left_behind": len(after - before),
        }
        Path(f"{out}.{rank}").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


def test_ram_cache_is_one_shared_mapping(tmp_path: Path) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=6, val=1, size=64)
    out = str(tmp_path / "report")
    mp.spawn(_worker, args=(_free_port(), str(data), out), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        report = json.loads(Path(f"{out}.{rank}").read_text())
        assert report == {"equal": True, "mapped": True, "read_only": True, "count": 6, "left_behind": 0}
