"""The training loop: one optimizer step on one screen, everything else in small hooks.

``Trainer(model, loader, optimizer, ...)`` runs epochs of official YOLOX training (reference §4): lr set after
each step to ``lr_at(it + 1)``, EMA after each step, explicit :class:`Phase` handed to the loader and the
loss, multiscale resizing, evaluation every ``eval_interval`` epochs (every epoch in the no-aug phase) on the
EMA weights, best/last checkpoints, early stopping, gradient accumulation, AMP on CUDA, a wall-clock budget,
SIGINT/SIGTERM handling and bit-exact resume. Progress, CSV, TensorBoard and plots are callbacks
(:mod:`yoloxdet.engine.callbacks`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from yoloxdet.assign import assign
from yoloxdet.config import TrainConfig, check_choice
from yoloxdet.engine import checkpoint as ckpt
from yoloxdet.engine import distributed as dist_utils
from yoloxdet.engine.budget_clock import budget_clock
from yoloxdet.engine.ema import ModelEMA, unwrap
from yoloxdet.engine.multiscale import MultiScale, resize_batch
from yoloxdet.engine.optim import set_lr
from yoloxdet.engine.precise_bn import recompute_bn_stats
from yoloxdet.engine.qat import float_state_dict
from yoloxdet.engine.schedule import LRSchedule, Phase, eval_due, lr_at, phase_at, progress_iters
from yoloxdet.loss import yolox_loss
from yoloxdet.structures import Targets

logger = logging.getLogger(__name__)

Batch = tuple[Tensor, Targets]
LossFn = Callable[[nn.Module, Tensor, Targets, Phase], dict[str, Tensor]]
EvaluateFn = Callable[[nn.Module], dict[str, float]]
NONFINITE_LIMIT = 10
LOG_INTERVAL = 20  # optimizer steps between reads of the on-device loss statistics (each read is a host sync)


class _StopAgreed(Exception):
    """Every process agreed to stop before this step's optimizer update; the step is discarded (resume redoes
    it)."""


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite for too many steps in a row."""


class TrainLoaderLike(Protocol):
    def set_epoch(self, epoch: int, mosaic: bool) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Batch]: ...


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # the epoch being (or next to be) trained, 0-based
    iteration: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # micro-batches of ``epoch`` already consumed (mid-epoch resume)
    elapsed_s: float = 0.0  # time on the budget clock (train.budget_clock) before this session
    best_ap: float = -1.0
    best_epoch: int = -1
    evals_since_best: int = 0
    nonfinite_streak: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: None (fp32) on CPU or for "off"/"fp32"; under "auto" bf16 where the GPU has it
    natively (sm80+; emulated bf16 on older cards is slower than fp16), else fp16. An unknown mode raises
    ConfigError."""
    check_choice("train.amp", mode)
    if device.type != "cuda" or mode in ("off", "fp32"):
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported(including_emulation=False)):
        return torch.bfloat16
    return torch.float16


def configure_kernels(deterministic: bool, device: torch.device) -> None:
    """``deterministic``: deterministic algorithms and cuDNN without autotuning (exact reruns, slower; ops
    with no deterministic CUDA kernel warn, naming themselves). Otherwise cuDNN autotunes its convolutions
    on CUDA."""
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic results; read at its first use, so set it early
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class Callback:
    """Hooks the trainer calls; every method is optional. ``trainer.stop = True`` ends training cleanly."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer, epoch: int, phase: Phase) -> None: ...
    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


class Trainer:
    """Runs official YOLOX training of ``model`` on ``loader`` with ``optimizer`` (see the module docstring).

    Args:
        loss_fn: ``(model, images, targets, phase) -> {"total", ...}`` (see :func:`yolox_loss_fn`).
        evaluate: ``(eval_model) -> {"AP": ..., "AP50": ...}`` on the validation split, called on every
            process.
        run_dir: where ``last.pt`` and ``best.pt`` go (main process only); None disables checkpoints.
        meta: extra entries for every checkpoint (the resolved config, class names).
    """

    def __init__(
        self,
        model: nn.Module,
        loader: TrainLoaderLike,
        optimizer: torch.optim.Optimizer,
        *,
        config: TrainConfig,
        schedule: LRSchedule,
        loss_fn: LossFn,
        evaluate: EvaluateFn | None = None,
        multiscale: MultiScale | None = None,
        callbacks: Sequence[Callback] = (),
        run_dir: str | Path | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.loader, self.optimizer = model, loader, optimizer
        self.config, self.schedule, self.loss_fn, self.evaluate = config, schedule, loss_fn, evaluate
        self.multiscale, self.callbacks = multiscale, list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.meta = dict(meta or {})
        self.device = next(model.parameters()).device
        self.dist = dist_utils.current()
        self.ema = ModelEMA(model, ramp=config.ema_ramp) if config.ema else None
        self.autocast_dtype = amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        configure_kernels(config.deterministic, self.device)
        self.state = TrainState()
        self.stop = False
        self.log_interval = LOG_INTERVAL  # steps between loss reads in the step logs (1: every step)
        self._pending: dict[str, Tensor] = {}  # on-device loss sums since the last read
        self._pending_steps = 0
        self._epoch_losses: dict[str, Tensor] = {}  # on-device loss sums over the current epoch
        self._step_elapsed_s = 0.0  # the budget clock as agreed in the last step
        self._clock = budget_clock(config.budget_clock)  # the lr schedule and the deadline use this clock
        self._session_start = self._clock()
        self._apply_lr()

    # ------------------------------------------------------------------ one optimizer step
    def train_step(self, micro_batches: Sequence[Batch], phase: Phase) -> dict[str, float]:
        """Forward/backward over ``micro_batches`` (gradient accumulation), then one optimizer and EMA step.

        The loss terms stay on the device (summed into the pending statistics); the returned logs hold them
        only every ``log_interval`` steps (see :meth:`read_losses`), so a step costs a single host sync: the
        one all-reduce of (non-finite loss, stop requested, budget clock) that keeps every process on the same
        branch.
        Under DDP a stop requested on any process discards the step before its update (``_StopAgreed``)."""
        self.optimizer.zero_grad(set_to_none=True)
        size = self.multiscale.size_at(self.state.iteration) if self.multiscale else None
        totals: dict[str, Tensor] = {}
        for k, (images, targets) in enumerate(micro_batches):
            images, targets = self._to_device(images, targets)
            if size is not None:
                images, targets = resize_batch(images, targets, size)
            if self.config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            last = k == len(micro_batches) - 1
            with self._no_sync(not last), self._autocast():
                losses = self.loss_fn(self.model, images, targets, phase)
            self.scaler.scale(losses["total"] / len(micro_batches)).backward()
            for key, value in losses.items():
                term = torch.as_tensor(value).detach().float() / len(micro_batches)
                totals[key] = totals[key] + term if key in totals else term
        # one agreement per step: non-finite loss or gradients anywhere, a stop requested anywhere, the
        # budget clock of the slowest process (so every process takes the same lr and end-of-budget decision)
        bad_loss, bad_grads, stop, self._step_elapsed_s = dist_utils.max_over_ranks(
            (~torch.isfinite(totals["total"]), self._nonfinite_gradients(), self.stop, self.elapsed_s()),
            self.device,
        )
        if stop and self.dist.distributed:
            self.optimizer.zero_grad(set_to_none=True)
            self.stop = True
            raise _StopAgreed
        if bad_loss or bad_grads:
            self._skip_nonfinite(
                {k: float(v) for k, v in totals.items()}, "loss" if bad_loss else "gradients"
            )
        else:
            self.state.nonfinite_streak = 0
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(self.model)
        self.state.iteration += 1
        _accumulate(self._pending, totals)
        _accumulate(self._epoch_losses, totals)
        self._pending_steps += 1
        logs = self.read_losses() if self._pending_steps >= self.log_interval else {}
        logs["lr"] = self.optimizer.param_groups[0]["lr"]  # the lr this step used
        self._apply_lr(self._step_elapsed_s)
        return logs

    def read_losses(self) -> dict[str, float]:
        """Means of the loss terms over the steps since the last read (one host sync), then start over."""
        means = _means(self._pending, self._pending_steps)
        self._pending, self._pending_steps = {}, 0
        return means

    def _to_device(self, images: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        """Copy (asynchronously from pinned memory) and convert on the device: uint8 travels 4x lighter."""
        images = images.to(self.device, non_blocking=True)
        if not images.is_floating_point():
            images = images.float()
        return images, targets.to(self.device, non_blocking=True)

    def _nonfinite_gradients(self) -> Tensor | bool:
        """Whether any gradient holds inf or NaN. A finite loss can still overflow in the backward pass, and
        one step on such gradients writes NaN into the weights for good. GradScaler (fp16) checks its own."""
        if self.scaler.is_enabled():
            return False
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        return ~torch.isfinite(torch.nn.utils.get_total_norm(grads)) if grads else False

    def _skip_nonfinite(self, totals: dict[str, float], what: str = "loss") -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.state.nonfinite_streak += 1
        logger.warning(
            "non-finite %s at iteration %d (%s); step skipped",
            what,
            self.state.iteration,
            ", ".join(f"{k} {v:.4g}" for k, v in totals.items()),
        )
        if self.state.nonfinite_streak >= NONFINITE_LIMIT:
            lr = self.optimizer.param_groups[0]["lr"]
            raise TrainingDiverged(
                f"the loss or its gradients were not finite for {NONFINITE_LIMIT} steps in a row "
                f"(lr {lr:.3g}). "
                "Likely causes: the learning rate is too high for the batch "
                f"({self.config.batch}; lower train.lr_per_image or raise train.warmup_epochs), "
                "or bad boxes in the labels (zero or negative size, far outside the image: "
                "run `yoloxdet check-data`)."
            )

    # ------------------------------------------------------------------ epochs
    def fit(self) -> TrainState:
        """Train until ``epochs``, the time budget, early stopping or a stop request; returns the final
        state."""
        self._call("on_train_start")
        with self._stop_on_signals():
            while self.state.epoch < self.config.epochs and not self.stop:
                self._run_epoch()
                if self._budget_spent():
                    clock = self.config.budget_clock
                    logger.info("time budget of %.1f %s min reached", self.config.max_minutes, clock)
                    self.stop = True
        self.save("last.pt")
        self._call("on_train_end")
        return self.state

    def _run_epoch(self) -> None:
        epoch, phase = self.state.epoch, self.current_phase()
        self.loader.set_epoch(epoch, phase.mosaic)
        self._call("on_epoch_start", epoch=epoch, phase=phase)
        self.model.train()
        sums: dict[str, float] = {}
        steps = 0
        self._pending, self._pending_steps, self._epoch_losses = {}, 0, {}
        for micro, data_s in self._groups(self._skip(iter(self.loader), self.state.batch_in_epoch)):
            start = time.perf_counter()
            try:
                logs = self.train_step(micro, phase)
            except _StopAgreed:
                return  # a stop requested on some process: fit() saves last.pt to resume from this step
            self.state.batch_in_epoch += len(micro)
            if self.state.batch_in_epoch >= len(self.loader):
                logs.update(self.read_losses())  # the epoch's last step shows its losses
            logs.update(data_s=data_s, compute_s=time.perf_counter() - start)
            for key in ("lr", "data_s", "compute_s"):
                sums[key] = sums.get(key, 0.0) + logs[key]
            steps += 1
            self._call("on_step_end", logs=logs)
            if self.stop and not self.dist.distributed and self.state.batch_in_epoch < len(self.loader):
                return  # interrupted mid-epoch: fit() saves last.pt to resume from here
            if self._budget_spent(self._step_elapsed_s):
                break  # the schedule has reached its end: finish this epoch with an evaluation
        self.state.epoch, self.state.batch_in_epoch = epoch + 1, 0
        epoch_losses = _means(self._epoch_losses, steps)
        logs = {"epoch": float(epoch + 1), **epoch_losses, **{k: v / max(steps, 1) for k, v in sums.items()}}
        if eval_due(epoch, self.config.epochs, self.config.eval_interval, phase) or self._budget_spent():
            logs.update(self._evaluate(epoch))
        self.state.history.append(logs)
        self.save("last.pt")
        self._call("on_epoch_end", epoch=epoch, logs=logs)
        # a stop requested in the epoch's last step, its evaluation or a hook: every process agrees
        self.stop = dist_utils.any_rank(self.stop, self.device)

    def current_phase(self) -> Phase:
        """Phase of the current epoch; under a time budget the epoch is where the schedule position says."""
        epoch = max(self.state.epoch, int(self.position() // max(self.schedule.iters_per_epoch, 1)))
        return phase_at(epoch, self.config.epochs, self.config.no_aug_epochs)

    def _evaluate(self, epoch: int) -> dict[str, float]:
        if self.evaluate is None:
            return {}
        dist_utils.all_reduce_norm_(unwrap(self.model))
        eval_model = self.ema.module if self.ema is not None else unwrap(self.model)
        dist_utils.all_reduce_norm_(eval_model)  # the EMA copy averages each process's statistics: align them
        if self.config.precise_bn > 0:
            batches = (
                self._to_device(images, targets)[0]
                for _, (images, targets) in zip(range(self.config.precise_bn), self.loader)
            )
            recompute_bn_stats(eval_model, batches)
            dist_utils.all_reduce_norm_(eval_model)
        eval_model.eval()
        metrics = dict(self.evaluate(eval_model))
        self.model.train()
        ap = float(metrics.get("AP", -1.0))
        if ap > self.state.best_ap:
            self.state.best_ap, self.state.best_epoch, self.state.evals_since_best = ap, epoch + 1, 0
            self.save("best.pt")
        else:
            self.state.evals_since_best += 1
            if 0 < self.config.patience <= self.state.evals_since_best:
                logger.info(
                    "early stopping: no AP improvement in %d evaluations (best %.4f at epoch %d)",
                    self.state.evals_since_best,
                    self.state.best_ap,
                    self.state.best_epoch,
                )
                self.stop = True
        return metrics

    # ------------------------------------------------------------------ schedule and time
    def elapsed_s(self) -> float:
        """Seconds on the budget clock (``train.budget_clock``) spent training, over all sessions."""
        return self.state.elapsed_s + self._clock() - self._session_start

    def position(self, elapsed_s: float | None = None) -> float:
        """Schedule position in iterations; under a time budget, from ``elapsed_s`` (agreed by every process
        in the step) or else from rank 0's clock, broadcast (a collective: call it on every process)."""
        budget_s = self.config.max_minutes * 60.0
        if budget_s <= 0:
            elapsed_s = 0.0
        elif elapsed_s is None:
            elapsed_s = dist_utils.broadcast_object(self.elapsed_s())
        return progress_iters(self.state.iteration, self.schedule, elapsed_s, budget_s)

    def _budget_spent(self, elapsed_s: float | None = None) -> bool:
        return self.config.max_minutes > 0 and self.position(elapsed_s) >= self.schedule.total_iters

    def _apply_lr(self, elapsed_s: float | None = None) -> None:
        set_lr(self.optimizer, lr_at(self.position(elapsed_s), self.schedule))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        state = asdict(self.state)
        state["elapsed_s"] = self.elapsed_s()
        inference = self.ema.module if self.ema is not None else unwrap(self.model)
        return {
            "format": ckpt.TRAIN_FORMAT,
            "model": float_state_dict(inference),  # a QAT run's without its fake quantisation
            "train_model": unwrap(self.model).state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": state,
            "rng": ckpt.rng_state(),
            **self.meta,
        }

    def save(self, name: str) -> None:
        """Rank 0 writes ``name``; a collective (every process's RNG state goes in): call it on every
        process."""
        if self.run_dir is None:
            return
        rank_states = dist_utils.gather_lists([ckpt.rng_state()]) if self.dist.distributed else None
        if self.dist.is_main:
            payload = self.checkpoint_payload()
            if rank_states is not None:
                payload["rng"] = {**payload["rng"], "ranks": rank_states}
            ckpt.save_atomic(payload, self.run_dir / name)

    def resume(self, payload: dict[str, Any]) -> None:
        """Restore everything :meth:`checkpoint_payload` saved; training continues exactly where it
        stopped."""
        unwrap(self.model).load_state_dict(payload["train_model"])
        if self.ema is not None and payload.get("ema") is not None:
            self.ema.load_state_dict(payload["ema"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        self.state = TrainState(**payload["state"])
        self._session_start = self._clock()
        ckpt.restore_rng_state(payload["rng"], rank=self.dist.rank)
        self._apply_lr()

    # ------------------------------------------------------------------ plumbing
    def _groups(self, batches: Iterator[Batch]) -> Iterator[tuple[list[Batch], float]]:
        """Micro-batches grouped for one optimizer step, with the time spent waiting for the data."""
        group: list[Batch] = []
        waited = 0.0
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            waited += time.perf_counter() - start
            if batch is not None:
                group.append(batch)
            if group and (batch is None or len(group) == self.config.accumulate):
                yield group, waited
                group, waited = [], 0.0
            if batch is None:
                return

    @staticmethod
    def _skip(batches: Iterator[Batch], count: int) -> Iterator[Batch]:
        for _ in range(count):  # resuming mid-epoch: the loader order is a function of (seed, epoch)
            next(batches, None)
        return batches

    def _no_sync(self, skip_sync: bool) -> contextlib.AbstractContextManager:
        if skip_sync and isinstance(self.model, nn.parallel.DistributedDataParallel):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _call(self, hook: str, **kwargs: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, **kwargs)

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM finish the current step, save ``last.pt`` and return (a second SIGINT aborts)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, _frame: Any) -> None:
            if self.stop and signum == signal.SIGINT:
                raise KeyboardInterrupt
            logger.warning("%s received: saving a checkpoint after this step", signal.Signals(signum).name)
            self.stop = True

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def yolox_loss_fn(
    assigner: str = TrainConfig.assigner, on_assign_s: Callable[[float], None] | None = None
) -> LossFn:
    """The official loss: assignment (no grad) then :func:`yoloxdet.loss.yolox_loss` with the phase's L1
    switch.

    ``on_assign_s`` (ablations) receives the assignment's wall time per call; timing synchronises CUDA around
    it, so the default path (None) stays free of host syncs.
    """

    def loss_fn(model: nn.Module, images: Tensor, targets: Targets, phase: Phase) -> dict[str, Tensor]:
        outputs = model(images)
        if on_assign_s is None:
            assignment = assign(assigner, outputs, targets)
        else:
            _sync(images.device)
            start = time.perf_counter()
            assignment = assign(assigner, outputs, targets)
            _sync(images.device)
            on_assign_s(time.perf_counter() - start)
        return yolox_loss(outputs, targets, assignment, use_l1=phase.l1)

    return loss_fn


def _accumulate(sums: dict[str, Tensor], terms: dict[str, Tensor]) -> None:
    for key, value in terms.items():
        sums[key] = sums[key] + value if key in sums else value


def _means(sums: dict[str, Tensor], steps: int) -> dict[str, float]:
    """``sums / steps`` as floats, read from the device in one transfer."""
    if not sums or steps == 0:
        return {}
    keys = list(sums)
    return dict(zip(keys, (torch.stack([sums[k] for k in keys]) / steps).tolist()))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def iterations_per_epoch(num_batches: int, accumulate: int) -> int:
    """Optimizer steps per epoch (the last, possibly short, group counts)."""
    return math.ceil(num_batches / max(accumulate, 1))
