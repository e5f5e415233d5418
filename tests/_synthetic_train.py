"""A tiny in-memory detection loader and trainer factory shared by the trainer, resume and DDP tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from yoloxdet.config import TrainConfig
from yoloxdet.engine.distributed import current, wrap_model
from yoloxdet.engine.ema import unwrap
from yoloxdet.engine.multiscale import MultiScale
from yoloxdet.engine.optim import build_optimizer
from yoloxdet.engine.schedule import LRSchedule, base_lr
from yoloxdet.engine.trainer import Callback, Trainer, iterations_per_epoch, yolox_loss_fn
from yoloxdet.models.zoo import create_model
from yoloxdet.structures import Targets

SIZE = 64


class SyntheticLoader:
    """Global batches of noisy images with bright boxes, a function of ``(seed, epoch)``.

    ``rank``/``world_size`` give this process its contiguous slice of every global batch; ``split`` > 1
    instead yields every global batch as ``split`` consecutive slices (a single process accumulating what DDP
    ranks see).
    """

    def __init__(
        self,
        num_batches: int = 3,
        global_batch: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        split: int = 1,
    ) -> None:
        self.num_batches, self.global_batch, self.seed = num_batches, global_batch, seed
        self.rank, self.world_size, self.split = rank, world_size, split
        self.epoch, self.mosaic = 0, True

    def set_epoch(self, epoch: int, mosaic: bool) -> None:
        self.epoch, self.mosaic = epoch, mosaic

    def __len__(self) -> int:
        return self.num_batches * self.split

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Targets]]:
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        for _ in range(self.num_batches):
            images, targets = _global_batch(gen, self.global_batch)
            parts = self.split if self.world_size == 1 else self.world_size
            chunk = self.global_batch // parts
            slices = range(parts) if self.world_size == 1 else [self.rank]
            for part in slices:
                sl = slice(part * chunk, (part + 1) * chunk)
                yield images[sl], Targets(targets.boxes_cxcywh[sl], targets.labels[sl], targets.mask[sl])


def _global_batch(gen: torch.Generator, batch: int) -> tuple[torch.Tensor, Targets]:
    images = torch.rand(batch, 3, SIZE, SIZE, generator=gen) * 60
    boxes, labels = [], []
    for b in range(batch):
        wh = 12 + torch.rand(2, 2, generator=gen) * 20
        centre = wh / 2 + torch.rand(2, 2, generator=gen) * (SIZE - wh)
        cls = torch.randint(0, 2, (2,), generator=gen)
        for (cx, cy), (w, h), c in zip(centre.tolist(), wh.tolist(), cls.tolist()):
            images[b, c, int(cy - h / 2) : int(cy + h / 2), int(cx - w / 2) : int(cx + w / 2)] = 230.0
        boxes.append(torch.cat([centre, wh], dim=1))
        labels.append(cls)
    return images, Targets.from_list(boxes, labels)


class StopAfter(Callback):
    """Request a stop after ``steps`` optimizer steps (an interruption at a known point)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.state.iteration >= self.steps:
            trainer.stop = True


def make_trainer(
    loader: SyntheticLoader,
    *,
    run_dir: Path | None = None,
    accumulate: int = 1,
    epochs: int = 3,
    callbacks: Sequence[Callback] = (),
    evaluate=None,
    model_seed: int = 0,
    loss_fn=None,
    **overrides,
) -> Trainer:
    torch.manual_seed(model_seed)
    model = create_model("yolox-nano", num_classes=2)
    model = wrap_model(model, current())  # DDP when a process group is initialised
    config = TrainConfig(
        epochs=epochs,
        batch=loader.global_batch,
        accumulate=accumulate,
        warmup_epochs=1,
        no_aug_epochs=1,
        eval_interval=1,
        seed=0,
        **overrides,
    )
    lr = base_lr(0.04 / 64, config.batch)
    schedule = LRSchedule(
        lr,
        iterations_per_epoch(len(loader), accumulate),
        config.epochs,
        config.warmup_epochs,
        config.no_aug_epochs,
    )
    optimizer = build_optimizer(
        unwrap(model), lr=0.0, momentum=config.momentum, weight_decay=config.weight_decay
    )
    multiscale = MultiScale((SIZE, SIZE), 1, 3, interval=2, seed=0)
    return Trainer(
        model,
        loader,
        optimizer,
        config=config,
        schedule=schedule,
        loss_fn=loss_fn or yolox_loss_fn(),
        evaluate=evaluate,
        multiscale=multiscale,
        callbacks=callbacks,
        run_dir=run_dir,
    )
