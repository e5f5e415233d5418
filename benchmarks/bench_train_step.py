"""One full training step: ours (forward, SimOTA, loss, backward, SGD step) vs pixeltable-yolox's
(``model(images, targets)`` forward + loss, backward, the same SGD step), same random batch, same run.

Settings: YOLOX-Nano at 416 and YOLOX-S at 640, batch 8, 80 classes, 10 random boxes per image; fp32 on CPU
(or the accelerator if present). Reports the median of ``--repeats`` timed steps after one warm-up step, and
the ratio peer/ours (> 1: we are faster). Writes the ``train`` section of docs/benchmarks.md. Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train_step.py [--repeats 8] [--models nano s]
        [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from yoloxdet.bench.perf import median, time_interleaved
from yoloxdet.config import TrainConfig
from yoloxdet.engine.optim import build_optimizer
from yoloxdet.engine.schedule import LRSchedule, Phase
from yoloxdet.engine.trainer import Trainer, yolox_loss_fn
from yoloxdet.models.zoo import create_model
from yoloxdet.structures import Targets

BATCH, GTS, CLASSES = 8, 10, 80
SETTINGS = {"nano": ("yolox-nano", 416), "s": ("yolox-s", 640)}
COMMAND = "OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train_step.py"


def random_batch(size: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, Targets]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(BATCH, 3, size, size, generator=gen) * 255
    wh = 8 + torch.rand(BATCH, GTS, 2, generator=gen) * size / 3
    centres = wh / 2 + torch.rand(BATCH, GTS, 2, generator=gen) * (size - wh)
    labels = torch.randint(0, CLASSES, (BATCH, GTS), generator=gen)
    targets = Targets(torch.cat([centres, wh], -1), labels, torch.ones(BATCH, GTS, dtype=torch.bool))
    return images.to(device), targets.to(device)


def ours(name: str, images: torch.Tensor, targets: Targets) -> Callable[[], None]:
    model = create_model(name, CLASSES).to(images.device).train()
    if TrainConfig().channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, lr=1e-4, momentum=0.9, weight_decay=5e-4)
    loss_fn, phase = yolox_loss_fn(), Phase(mosaic=True, l1=False)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, images, targets, phase)["total"].backward()
        optimizer.step()

    return step


def ours_trainer(name: str, images: torch.Tensor, targets: Targets) -> Callable[[], None]:
    """The step as training runs it: ``Trainer.train_step`` with EMA (the loader is never iterated)."""
    model = create_model(name, CLASSES).to(images.device).train()
    config = TrainConfig(batch=BATCH, amp="off")
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, lr=1e-4, momentum=0.9, weight_decay=5e-4)
    trainer = Trainer(
        model,
        [],
        optimizer,
        config=config,
        schedule=LRSchedule(1e-4, 100, 300, 5, 15),
        loss_fn=yolox_loss_fn(),
    )
    phase = Phase(mosaic=True, l1=False)

    def step() -> None:
        trainer.train_step([(images, targets)], phase)

    return step


def peer(name: str, images: torch.Tensor, targets: Targets) -> Callable[[], None]:
    from yolox.config import YoloxConfig

    cfg = YoloxConfig.get_named_config(name.replace("-", "_"))
    cfg.num_classes = CLASSES
    model = cfg.get_model().to(images.device).train()
    optimizer = build_optimizer(model, lr=1e-4, momentum=0.9, weight_decay=5e-4)
    labels = torch.cat(
        [targets.labels[..., None].float(), targets.boxes_cxcywh], -1
    )  # [B, G, 5] cls cx cy w h

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(images, labels)["total_loss"].backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for key in args.models:
        name, size = SETTINGS[key]
        images, targets = random_batch(size, device)
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        steps = {
            "ours": ours(name, images, targets),
            "trainer": ours_trainer(name, images, targets),
            "peer": peer(name, images, targets),
        }
        times = time_interleaved(steps, warmup=1, iters=args.repeats, sync=sync)
        t_ours, t_trainer, t_peer = (median(times[k]) for k in ("ours", "trainer", "peer"))
        rows.append(
            f"| {name} | {size} | {BATCH} | {t_ours * 1000:.0f} | {t_trainer * 1000:.0f} | "
            f"{t_peer * 1000:.0f} | {t_peer / t_ours:.2f} | {t_peer / t_trainer:.2f} |"
        )
        print(rows[-1], flush=True)
    where = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    table = "\n".join(
        [
            "| model | size | batch | ours ms | ours Trainer ms | pixeltable-yolox ms | ratio "
            "(peer/ours) | ratio (peer/ours Trainer) |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    text = (
        f"## Training step (forward + assignment + loss + backward + SGD)\n\n{table}\n\n"
        f"Median of {args.repeats} steps after a warm-up; fp32; {where}; torch {torch.__version__}; "
        f"{platform.machine()}. The three take turns step by step, so load from "
        f"elsewhere falls on all alike: compare the ratios across runs, not the milliseconds. "
        f"`{COMMAND} --repeats {args.repeats}`"
    )
    if not args.no_write:
        print(f"wrote {write_section('train', text)}")


if __name__ == "__main__":
    main()
