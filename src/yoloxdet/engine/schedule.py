"""The official ``yoloxwarmcos`` learning-rate schedule and the training phases (reference §4.2, §4.4).

Pure functions of the position in training: the trainer asks ``lr_at(position)`` and ``phase_at(epoch)`` and
hands the answers to the optimizer, the data loader and the loss, so every part sees the same explicit state.

A wall-clock budget maps onto the same schedule: the warm-up still counts steps, and after it the position is
``max(iteration, warmup + elapsed/budget · (total - warmup))``, so the cosine reaches its floor at the
deadline whichever comes first (see :func:`progress_iters`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    """Quadratic warm-up from ``warmup_lr`` to ``base_lr``, cosine down to ``min_lr_ratio · base_lr``, then
    flat for the last ``no_aug_epochs`` (official ``LRScheduler("yoloxwarmcos", ...)``)."""

    base_lr: float
    iters_per_epoch: int
    epochs: int
    warmup_epochs: float = 5
    no_aug_epochs: int = 15
    warmup_lr: float = 0.0
    min_lr_ratio: float = 0.05

    @property
    def total_iters(self) -> int:
        return self.iters_per_epoch * self.epochs

    @property
    def warmup_iters(self) -> float:
        return self.iters_per_epoch * self.warmup_epochs

    @property
    def no_aug_iters(self) -> int:
        return self.iters_per_epoch * self.no_aug_epochs


def base_lr(lr_per_image: float, global_batch: int) -> float:
    """Official linear scaling: ``lr = basic_lr_per_img × total batch`` (0.01 for a batch of 64)."""
    return lr_per_image * global_batch


def lr_at(iteration: float, s: LRSchedule) -> float:
    """The learning rate at ``iteration`` (may be fractional under a time budget).

    The official trainer sets the lr for the *next* step after each optimizer step, i.e. ``lr_at(it + 1)``.
    """
    min_lr = s.base_lr * s.min_lr_ratio
    if s.warmup_iters > 0 and iteration <= s.warmup_iters:
        return (s.base_lr - s.warmup_lr) * (iteration / s.warmup_iters) ** 2 + s.warmup_lr
    if iteration >= s.total_iters - s.no_aug_iters:
        return min_lr
    span = s.total_iters - s.warmup_iters - s.no_aug_iters
    return min_lr + 0.5 * (s.base_lr - min_lr) * (
        1.0 + math.cos(math.pi * (iteration - s.warmup_iters) / span)
    )


def progress_iters(
    iteration: int, schedule: LRSchedule, elapsed_s: float = 0.0, budget_s: float = 0.0
) -> float:
    """Schedule position: the iteration count, or further along if a wall-clock budget is running out faster.

    The warm-up is a number of steps whatever the budget: laying it over the clock as well would shrink a
    warm-up of one epoch out of an upper bound of 300 to a few seconds. The time budget is laid over the span
    after it."""
    total, warmup = schedule.total_iters, schedule.warmup_iters
    if budget_s <= 0:
        return float(iteration)
    if elapsed_s >= budget_s:  # spent, even in the middle of the warm-up
        return float(max(iteration, total))
    if iteration < warmup:
        return float(iteration)
    return max(float(iteration), warmup + elapsed_s / budget_s * (total - warmup))


@dataclass(frozen=True)
class Phase:
    """What the data loader and the loss do in an epoch: strong augmentation (mosaic/mixup) or the no-aug
    phase with the L1 term."""

    mosaic: bool
    l1: bool


def phase_at(epoch: int, epochs: int, no_aug_epochs: int) -> Phase:
    """Phase of 0-based ``epoch``. Official switches when ``epoch + 1 == epochs - no_aug_epochs``, so the
    no-aug phase lasts ``no_aug_epochs + 1`` epochs while the lr is flat only for the last ``no_aug_epochs``
    (§4.4)."""
    no_aug = epoch + 1 >= epochs - no_aug_epochs
    return Phase(mosaic=not no_aug, l1=no_aug)


def eval_due(epoch: int, epochs: int, interval: int, phase: Phase) -> bool:
    """Evaluate after 0-based ``epoch``: every ``interval`` epochs, every epoch in the no-aug phase, and at
    the end."""
    done = epoch + 1
    return done == epochs or (interval > 0 and done % interval == 0) or not phase.mosaic
