"""Assemble a training run from a :class:`~yoloxdet.config.Config`: datasets, loader, model, optimizer,
schedule, run folder and callbacks, then hand them to the :class:`~yoloxdet.engine.trainer.Trainer`.

Used by ``yoloxdet train`` and usable from Python::

    config = load_config(None, ["data.dataset=data.yaml", "model.name=yolox-nano", "epochs=10", "batch=16"])
    state, run_dir = train(config)
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from yoloxdet.config import (
    Config,
    ConfigError,
    TrainConfig,
    apply_overrides,
    eval_input_size,
    from_dict,
    parse_lr_scales,
    to_dict,
    with_changes,
)
from yoloxdet.data.augment import resolve_augment
from yoloxdet.data.checks import checked_dataset
from yoloxdet.data.datasets import DetectionDataset, ram_cache_files
from yoloxdet.data.loader import build_train_loader
from yoloxdet.data.spec import DatasetSpecError, load_dataset_spec
from yoloxdet.engine import distributed as dist_utils
from yoloxdet.engine.callbacks import CsvLogger, CurvePlotter, ProgressBar, TensorBoardLogger
from yoloxdet.engine.checkpoint import load_training_checkpoint
from yoloxdet.engine.ema import unwrap
from yoloxdet.engine.freeze import freeze
from yoloxdet.engine.multiscale import multiscale_for
from yoloxdet.engine.optim import build_optimizer
from yoloxdet.engine.qat import prepare_qat
from yoloxdet.engine.schedule import LRSchedule, base_lr
from yoloxdet.engine.train_eval import coco_evaluate_fn
from yoloxdet.engine.trainer import Callback, LossFn, Trainer, TrainState, iterations_per_epoch, yolox_loss_fn
from yoloxdet.inference.api import resolve_device
from yoloxdet.io import write_bytes_atomic
from yoloxdet.models.zoo import ModelSpec, create_model, get_spec
from yoloxdet.weights import calibrate_batchnorm, load_model, load_state_dict_into

logger = logging.getLogger(__name__)
CALIBRATION_BATCHES = 8


@dataclass(frozen=True)
class Layout:
    """Per-process micro-batch and the run's global shape: ``batch = micro × world × accumulate``."""

    micro_batch: int
    world_size: int
    accumulate: int


def batch_layout(global_batch: int, world_size: int, accumulate: int) -> Layout:
    per_step = world_size * max(accumulate, 1)
    if global_batch < per_step or global_batch % per_step:
        raise ConfigError(
            f"train.batch={global_batch} must be a multiple of processes ({world_size}) × "
            f"train.accumulate ({accumulate})"
        )
    return Layout(global_batch // per_step, world_size, max(accumulate, 1))


def make_run_dir(config: Config, resume_from: str | Path | None) -> Path:
    """The checkpoint's folder when resuming; else ``output_dir/name`` (default: model and time), never
    reused."""
    if resume_from is not None:
        return Path(resume_from).resolve().parent
    base = Path(config.train.output_dir)
    name = config.train.name or f"{get_spec(config.model.name).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir, n = base / name, 2
    while run_dir.exists():
        run_dir, n = base / f"{name}-{n}", n + 1
    return run_dir


def _datasets(config: Config, cache_dir: Path) -> tuple[Any, Any]:
    if not config.data.dataset:
        raise ConfigError("no dataset: give DATASET.yaml (or data.dataset=PATH)")
    spec = load_dataset_spec(config.data.dataset)
    train_set = checked_dataset(spec, "train", cache_dir=cache_dir)
    try:
        val_set = checked_dataset(spec, "val", cache_dir=cache_dir)
    except DatasetSpecError:
        logger.warning("%s has no 'val' split: training without evaluation", config.data.dataset)
        val_set = None
    return train_set, val_set


def _initial_weights(model: nn.Module, config: Config, loader: Any, device: torch.device) -> None:
    """Fine-tuning: official or imported weights; the class predictors are re-initialised when the class count
    differs, and BN statistics of BN-folded (ONNX) imports are re-estimated on a few training batches."""
    source = config.train.weights
    loaded, _info = load_model(source, model_name=config.model.name)
    load_state_dict_into(model, loaded.state_dict(), source=str(source))
    if str(source).lower().endswith(".onnx") and config.train.quant != "qat":  # QAT never normalises by batch
        batches = (images.to(device).float() for _, (images, _) in zip(range(CALIBRATION_BATCHES), loader))
        calibrate_batchnorm(model, batches)
    logger.info("initial weights: %s", source)


def _multiscale(input_hw: tuple[int, int], spec: ModelSpec, config: Config) -> Any:
    # the model's random_size (nano/tiny 320-640) belongs to its default input size; other sizes use +-range
    random_size = spec.random_size if input_hw == (spec.input_size, spec.input_size) else None
    t = config.train
    return multiscale_for(input_hw, t.multiscale_range, random_size, t.multiscale_interval, t.seed)


def sync_bn_then_freeze(model: nn.Module, config: TrainConfig, *, distributed: bool) -> nn.Module:
    """SyncBatchNorm (``sync_bn``, distributed runs) first, then ``freeze``: the conversion builds new BN
    modules, which would drop the forward hooks that hold frozen BN layers in eval mode."""
    if config.sync_bn and distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if config.freeze:
        frozen = freeze(model, config.freeze)
        logger.info("frozen: %s (%.2f M parameters)", ", ".join(config.freeze), frozen / 1e6)
    return model


def share_ram_cache(
    dataset: DetectionDataset, size_hw: tuple[int, int], info: dist_utils.DistInfo, workers: int = 4
) -> None:
    """``data.cache=ram`` with several processes on one machine: one copy per machine, not per process.

    Local rank 0 decodes the images and writes them to one file in shared memory; every local rank (0
    included) then maps that file read-only, and the file is unlinked once all have mapped it (the pages
    live until the last mapping closes, so nothing is left behind)."""
    token = dist_utils.broadcast_object(uuid.uuid4().hex)  # one name per run, the same on every rank
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    path = shm / f"yoloxdet-ram-cache-{token}.npy"
    try:
        if info.local_rank == 0:
            dataset.enable_cache("ram", size_hw, workers=workers)
            dataset.save_ram_cache(path)
        dist_utils.barrier()
        dataset.attach_ram_cache(path)
        dist_utils.barrier()
    finally:
        if info.local_rank == 0:
            for leftover in ram_cache_files(path):
                leftover.unlink(missing_ok=True)
    logger.info("RAM cache shared by %d processes on this machine", info.local_world_size)


def build_trainer(
    config: Config,
    *,
    resume: dict[str, Any] | None = None,
    run_dir: Path | None = None,
    progress: bool = True,
    extra_callbacks: tuple[Callback, ...] = (),
    loss_fn: LossFn | None = None,
) -> Trainer:
    """Everything a run needs, wired into a :class:`Trainer` (resumed from ``resume`` if given).

    ``loss_fn``: replaces the default ``yolox_loss_fn(config.train.assigner)`` (e.g. ablations time
    assignment).
    """

    if config.train.quant == "qat" and not config.train.weights:
        raise ConfigError(
            "train.quant=qat fine-tunes trained weights for int8: give them with train.weights=PATH"
        )
    device = resolve_device(config.train.device)
    info = dist_utils.init_from_env(device)
    if info.distributed and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    spec: ModelSpec = get_spec(config.model.name)
    layout = batch_layout(config.train.batch, info.world_size, config.train.accumulate)
    input_hw = tuple(config.train.input_size or (spec.input_size, spec.input_size))
    cache_root = Path(config.train.output_dir) / ".data-checks"
    train_set, val_set = _datasets(config, cache_root)
    if config.data.cache == "ram" and info.local_world_size > 1:
        share_ram_cache(train_set, input_hw, info)
    elif config.data.cache != "none":
        train_set.enable_cache(config.data.cache, input_hw, cache_dir=cache_root / "images")
    config = with_changes(config, model=with_changes(config.model, num_classes=train_set.num_classes))
    augment = resolve_augment(
        config.augment,
        mosaic_prob=spec.mosaic_prob,
        enable_mixup=spec.enable_mixup,
        mosaic_scale=spec.mosaic_scale,
    )
    loader = build_train_loader(
        train_set,
        batch_size=layout.micro_batch,
        input_size=input_hw,
        augment=augment,
        seed=config.train.seed,
        workers=config.data.workers,
        distributed=info.distributed,
        rank=info.rank,
        world_size=info.world_size,
        pin_memory=device.type == "cuda",
        uint8=device.type == "cuda",
    )
    torch.manual_seed(config.train.seed)
    model = create_model(spec.name, num_classes=train_set.num_classes, head=config.model.head).to(device)
    if config.train.weights and resume is None:
        _initial_weights(model, config, loader, device)
    if config.train.quant == "qat":
        model = prepare_qat(model)
    model = sync_bn_then_freeze(model, config.train, distributed=info.distributed)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = dist_utils.wrap_model(model, info)
    t = config.train
    schedule = LRSchedule(
        base_lr(t.lr_per_image, t.batch),
        iterations_per_epoch(len(loader), layout.accumulate),
        t.epochs,
        t.warmup_epochs,
        t.no_aug_epochs,
        t.warmup_lr,
        t.min_lr_ratio,
    )
    optimizer = build_optimizer(
        unwrap(model),
        lr=t.warmup_lr,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        lr_scales=parse_lr_scales(t.lr_scales),
    )
    evaluate = None
    if val_set is not None:
        eval_hw = eval_input_size(config, spec.input_size)
        evaluate = coco_evaluate_fn(
            val_set, input_size=eval_hw, config=config.eval, workers=config.data.workers
        )
    callbacks: list[Callback] = list(extra_callbacks)
    if info.is_main and run_dir is not None:
        if progress:
            callbacks.append(ProgressBar())
        callbacks += [
            CsvLogger(run_dir / "results.csv"),
            TensorBoardLogger(run_dir / "tensorboard"),
            CurvePlotter(run_dir / "curves.png"),
        ]
    meta = {"config": to_dict(config), "class_names": list(train_set.names), "model_name": spec.name}
    trainer = Trainer(
        model,
        loader,
        optimizer,
        config=t,
        schedule=schedule,
        loss_fn=loss_fn or yolox_loss_fn(t.assigner),
        evaluate=evaluate,
        multiscale=_multiscale(input_hw, spec, config),
        callbacks=callbacks,
        run_dir=run_dir,
        meta=meta,
    )
    if resume is not None:
        trainer.resume(resume)
    return trainer


@dataclass(frozen=True)
class ResumePoint:
    """A training checkpoint read once: where it is and what it holds (its config is the run's, see
    :meth:`config`)."""

    path: Path
    payload: dict[str, Any]

    @classmethod
    def read(cls, path: str | Path) -> ResumePoint:
        return cls(Path(path), load_training_checkpoint(path))

    def config(self, overrides: Iterable[str] = ()) -> Config:
        """The saved run configuration with ``overrides`` applied."""
        return apply_overrides(from_dict(Config, self.payload["config"]), overrides)


def train(
    config: Config,
    *,
    resume_from: str | Path | ResumePoint | None = None,
    progress: bool = True,
    extra_callbacks: tuple[Callback, ...] = (),
    loss_fn: LossFn | None = None,
) -> tuple[TrainState, Path]:
    """Run (or resume) training; returns the final state and the run folder (resolved config, CSV,
    TensorBoard, curves, ``last.pt`` / ``best.pt``). ``resume_from``: a checkpoint path, or
    a :class:`ResumePoint` already read (``yoloxdet train --resume`` reads it once for its config).
    ``loss_fn``: see :func:`build_trainer`."""
    if resume_from is not None and not isinstance(resume_from, ResumePoint):
        resume_from = ResumePoint.read(resume_from)
    payload = resume_from.payload if resume_from is not None else None
    info = dist_utils.init_from_env(resolve_device(config.train.device))  # before the run folder is shared
    if not info.is_main:
        logging.getLogger("yoloxdet").setLevel(logging.WARNING)  # rank-0 logging; warnings from every rank
        progress = False
    run_dir = Path(
        dist_utils.broadcast_object(str(make_run_dir(config, resume_from.path if resume_from else None)))
    )
    if dist_utils.current().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(run_dir / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
    trainer = build_trainer(
        config,
        resume=payload,
        run_dir=run_dir,
        progress=progress,
        extra_callbacks=extra_callbacks,
        loss_fn=loss_fn,
    )
    logger.info("run folder: %s", run_dir)
    state = trainer.fit()
    return state, run_dir
