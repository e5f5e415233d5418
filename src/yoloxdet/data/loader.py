"""Training and validation loaders: seeded, phase-explicit, robust to bad files.

Reproducibility: the shuffle order comes from ``(seed, epoch)`` and every random choice of a sample from a
generator seeded with ``(seed, epoch, sample index)``, so a run reproduces exactly whatever the number of
workers and whichever worker draws a sample. The phase (mosaic on/off) travels with each index from the
sampler, which lives in the main process, so ``set_epoch`` reaches persistent workers too (official does the
same through its batch sampler).
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from yoloxdet.data.augment import ResolvedAugment, TrainSample
from yoloxdet.data.datasets import DetectionDataset
from yoloxdet.data.mosaic import Loaded, Tile, make_train_sample
from yoloxdet.data.transforms import letterbox
from yoloxdet.io import ImageReadError, read_image
from yoloxdet.structures import Targets

logger = logging.getLogger(__name__)
MAX_SUBSTITUTES = 16


def default_workers(batch_size: int) -> int:
    """Workers scaled to this process's share of the CPUs (torchrun's ``LOCAL_WORLD_SIZE`` processes share the
    machine), minus one for the main process, at most the batch."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    cpus //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(cpus - 1, batch_size, 8))


class _TrainView(Dataset):
    """Map-style view used by the DataLoader: ``(index, epoch, mosaic)`` -> one augmented sample."""

    def __init__(self, dataset: DetectionDataset, input_hw: tuple[int, int], aug: ResolvedAugment, seed: int):
        self.dataset = dataset
        self.input_hw = input_hw
        self.aug = aug
        self.seed = seed
        self.mixup_pool = np.flatnonzero(dataset.box_counts()).astype(np.int64)
        self.bad: set[int] = set()  # per worker: files already reported once

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> Loaded:
        """The official pull_item; an unreadable file is reported once and replaced by the next good one."""
        n = len(self.dataset)
        for step in range(MAX_SUBSTITUTES):
            i = (index + step) % n
            if i in self.bad:
                continue
            try:
                return self.dataset.load_resized(i, self.input_hw)
            except (ImageReadError, OSError, ValueError, cv2.error) as exc:
                self.bad.add(i)
                logger.warning("skipping bad sample (%d so far in this worker): %s", len(self.bad), exc)
        raise RuntimeError(
            f"{MAX_SUBSTITUTES} consecutive unreadable images from index {index}; see warnings"
        )

    def peek(self, index: int) -> Tile:
        """A mosaic tile from the annotations alone; the image is decoded only if the tile can be seen."""
        if index in self.bad:
            return Tile.of(self.load(index))
        (width, height), (boxes, labels) = self.dataset.size_wh(index), self.dataset.annotations(index)
        ratio = min(self.input_hw[0] / height, self.input_hw[1] / width)
        return Tile(
            (int(width * ratio), int(height * ratio)),
            boxes * np.float32(ratio),
            labels,
            lambda: self.load(index),
        )

    def __getitem__(self, key: tuple[int, int, bool]) -> TrainSample:
        index, epoch, mosaic_enabled = key
        rng = np.random.default_rng([self.seed, epoch, index])
        return make_train_sample(
            index,
            self.load,
            len(self.dataset),
            self.mixup_pool,
            self.input_hw,
            self.aug,
            rng,
            mosaic_enabled,
            peek=self.peek,
        )


class _PhaseSampler(Sampler):
    """Yields batches of ``(index, epoch, mosaic)``; this rank's share of a ``(seed, epoch)`` permutation."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.mosaic = 0, True

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.size / self.world_size) / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int, bool]]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=gen).tolist()
        per_rank = math.ceil(self.size / self.world_size)
        order = (order * (1 + self.world_size))[: per_rank * self.world_size]  # pad so ranks get equal shares
        mine = order[self.rank :: self.world_size]
        for start in range(0, len(mine), self.batch_size):
            yield [(i, self.epoch, self.mosaic) for i in mine[start : start + self.batch_size]]


def collate_train(samples: list[TrainSample]) -> tuple[torch.Tensor, Targets]:
    """uint8 images [B, 3, H, W] (converted to float in the main process: 4x less to move between
    processes)."""
    images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    targets = Targets.from_list(
        [torch.from_numpy(s.boxes_cxcywh) for s in samples], [torch.from_numpy(s.labels) for s in samples]
    )
    return images, targets


@dataclass
class TrainLoader:
    """Iterate -> ``(images float32 [B, 3, H, W] BGR 0-255, Targets)``. Call ``set_epoch`` before each epoch.
    With ``uint8`` the images stay uint8 (pinned when the loader pins): the trainer converts them on the
    GPU."""

    loader: DataLoader
    sampler: _PhaseSampler
    uint8: bool = False

    def set_epoch(self, epoch: int, mosaic: bool) -> None:
        """Select the epoch (reshuffle, reseed) and the explicit phase: mosaic/mixup on, or the no-aug
        phase."""
        self.sampler.epoch, self.sampler.mosaic = epoch, mosaic

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Targets]]:
        for images, targets in self.loader:
            yield (images if self.uint8 else images.float()), targets


def build_train_loader(
    dataset: DetectionDataset,
    *,
    batch_size: int,
    input_size: tuple[int, int],
    augment: ResolvedAugment,
    seed: int,
    workers: int | None = None,
    distributed: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    uint8: bool = False,
) -> TrainLoader:
    """Augmented training batches; ``batch_size`` is per process; ``len`` is iterations per epoch
    (no samples dropped, as official ``drop_last=False``)."""
    if not distributed:
        rank, world_size = 0, 1
    workers = default_workers(batch_size) if workers is None else workers
    view = _TrainView(dataset, tuple(input_size), augment, seed)
    sampler = _PhaseSampler(len(dataset), batch_size, seed, rank, world_size)
    loader = DataLoader(
        view,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_train,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
    return TrainLoader(loader, sampler, uint8)


def _seed_worker(worker_id: int) -> None:
    cv2.setNumThreads(0)  # the workers are the parallelism; OpenCV's own threads would oversubscribe the CPUs
    # our code draws only from explicit generators; this pins any third-party global RNG use as well
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class _ValView(Dataset):
    def __init__(self, dataset: DetectionDataset, input_hw: tuple[int, int]) -> None:
        self.dataset, self.input_hw = dataset, input_hw

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]] | None:
        try:
            sample = self.dataset.load(index)
        except (ImageReadError, OSError) as exc:
            logger.warning("validation: skipping unreadable image: %s", exc)
            return None
        canvas, ratio = letterbox(sample.image, self.input_hw)
        meta = {
            "image_id": sample.image_id,
            "ratio": ratio,
            "orig_hw": sample.image.shape[:2],
            "path": sample.path,
        }
        return canvas, meta


def _collate_val(items: list) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    items = [it for it in items if it is not None]
    if not items:
        return torch.zeros(0, 3, 0, 0), []
    images = torch.from_numpy(np.stack([c for c, _ in items])).permute(0, 3, 1, 2)
    return images, [m for _, m in items]


@dataclass
class ValLoader:
    """Iterate -> ``(images float32 [B, 3, H, W] BGR 0-255, metas)``; ``len`` is the number of batches."""

    loader: DataLoader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[dict[str, Any]]]]:
        for images, metas in self.loader:
            if metas:
                yield images.float(), metas


def build_val_loader(
    dataset: DetectionDataset,
    *,
    batch_size: int,
    input_size: tuple[int, int],
    workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> ValLoader:
    """Letterboxed batches in dataset order: ``(images float32 [B, 3, H, W], metas)``; each meta has
    ``image_id``, ``ratio`` (divide boxes by it), ``orig_hw`` and ``path``. Unreadable images are skipped.
    With ``world_size`` > 1 only every ``world_size``-th batch from ``rank`` on is read (sharded
    evaluation)."""
    workers = default_workers(batch_size) if workers is None else workers
    mine = [i for i in range(len(dataset)) if (i // batch_size) % world_size == rank]
    loader = DataLoader(
        _ValView(dataset, tuple(input_size)),
        batch_size=batch_size,
        sampler=mine,
        num_workers=workers,
        collate_fn=_collate_val,
    )
    return ValLoader(loader)


class _DecodeView(Dataset):
    """``i`` -> ``(image_id, BGR image or None)``; None (and one warning naming the file) when unreadable."""

    def __init__(self, items: list[tuple[int, str]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None]:
        image_id, path = self.items[i]
        try:
            return image_id, read_image(path)
        except ImageReadError as exc:
            logger.warning("skipping %s", exc)
            return image_id, None


def _as_is(item: Any) -> Any:
    return item  # module level, so that a spawned worker can unpickle it


def decoded_images(
    items: list[tuple[int, str | os.PathLike]],
    workers: int | None = None,
) -> Iterator[tuple[int, np.ndarray | None]]:
    """``(image_id, BGR image)`` in the order of ``items`` (``(image_id, path)`` pairs), decoded by
    ``workers`` loader processes (default: the CPUs but one) while the caller works on the previous images."""
    workers = default_workers(64) if workers is None else workers
    view = _DecodeView([(int(i), str(p)) for i, p in items])
    if workers == 0:
        return (view[i] for i in range(len(view)))
    return iter(DataLoader(view, batch_size=None, num_workers=workers, collate_fn=_as_is, prefetch_factor=16))
