"""``yoloxdet train DATASET.yaml model=yolox-nano epochs=50 batch=16``: train or fine-tune a YOLOX model.

Bare ``key=value`` overrides are resolved against every config section (``epochs`` is ``train.epochs``), with
a "did you mean" for typos; ``model=NAME`` is short for ``model.name=NAME``, ``batch``/``input_size`` mean the
training ones. ``--config FILE`` loads a YAML config
first. ``--resume RUN/last.pt`` continues an interrupted run exactly (its saved config, plus any overrides).
Multi-GPU: ``torchrun --nproc_per_node=N -m yoloxdet train ...`` (see docs/training.md).
"""

from __future__ import annotations

import argparse

from . import CLIError

HELP = "train a model on a dataset description (COCO, VOC or YOLO txt); key=value overrides, --resume"
TRAILING_ITEMS = "items"  # key=value items may also follow the options (see cli.parse)
# short forms for the train command; batch and input_size exist in train and eval, and here mean train
ALIASES = {
    "model": "model.name",
    "data": "data.dataset",
    "dataset": "data.dataset",
    "weights": "train.weights",
    "batch": "train.batch",
    "input_size": "train.input_size",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "items",
        nargs="*",
        metavar="DATASET.yaml | key=value",
        help="the dataset description and config overrides, e.g. epochs=100 batch=32",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config (sections model, data, augment, train, eval)"
    )
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a run's last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def split_items(items: list[str]) -> tuple[str | None, list[str]]:
    """``(dataset path or None, overrides)``; aliases expanded."""
    dataset, overrides = None, []
    for item in items:
        if "=" not in item:
            if dataset is not None:
                raise CLIError(f"two dataset files given ('{dataset}' and '{item}'); overrides are key=value")
            dataset = item
            continue
        key, value = item.split("=", 1)
        overrides.append(f"{ALIASES.get(key, key)}={value}")
    return dataset, overrides


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.distributed import current
    from ..engine.session import ResumePoint, train
    from ..engine.trainer import TrainingDiverged

    dataset, overrides = split_items(args.items)
    if dataset is not None:
        overrides.insert(0, f"data.dataset={dataset}")
    resume = ResumePoint.read(args.resume) if args.resume else None
    config = resume.config(overrides) if resume is not None else load_config(args.config, overrides)
    try:
        state, run_dir = train(config, resume_from=resume, progress=not args.no_progress)
    except TrainingDiverged as exc:
        raise CLIError(str(exc)) from exc
    if current().is_main:
        best = (
            f"best AP {state.best_ap:.4f} at epoch {state.best_epoch}"
            if state.best_epoch > 0
            else "no evaluation"
        )
        print(f"trained {state.epoch} epoch(s), {state.iteration} steps; {best}; run folder {run_dir}")
    return 0
