"""Trainer callbacks for the run folder: a progress bar, a per-epoch CSV, TensorBoard logs and PNG curves.

Each is independent and optional; the ``train`` command attaches them on the main process only.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from yoloxdet.engine.schedule import Phase
from yoloxdet.engine.trainer import Callback, Trainer
from yoloxdet.io import write_bytes_atomic, write_figure_atomic

logger = logging.getLogger(__name__)

LOSS_KEYS = ("total", "iou", "obj", "cls", "l1")
METRIC_KEYS = ("AP", "AP50")


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss terms, the lr and data vs compute time per step."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_epoch_start(self, trainer: Trainer, epoch: int, phase: Phase) -> None:
        from tqdm import tqdm

        mode = "mosaic" if phase.mosaic else "no-aug+L1"
        self.bar = tqdm(
            total=len(trainer.loader),
            initial=trainer.state.batch_in_epoch,
            unit="batch",
            desc=f"epoch {epoch + 1}/{trainer.config.epochs} ({mode})",
            dynamic_ncols=True,
        )

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if self.bar is None:
            return
        shown = {k: f"{logs[k]:.3f}" for k in LOSS_KEYS if k in logs}
        shown.update(
            lr=f"{logs.get('lr', 0.0):.2e}",
            data=f"{logs.get('data_s', 0.0):.2f}s",
            step=f"{logs.get('compute_s', 0.0):.2f}s",
        )
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(trainer.config.accumulate)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self._close()
        if "AP" in logs:
            logger.info(
                "epoch %d: AP %.4f AP50 %.4f (best %.4f at epoch %d)",
                epoch + 1,
                logs["AP"],
                logs.get("AP50", float("nan")),
                trainer.state.best_ap,
                trainer.state.best_epoch,
            )

    def on_train_end(self, trainer: Trainer) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CsvLogger(Callback):
    """``results.csv``: one row per epoch (mean loss terms, lr, timings, metrics), rewritten atomically from
    the trainer's history so a resumed run continues the same file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        rows = trainer.state.history
        columns = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        write_bytes_atomic(self.path, text.getvalue().encode())


class TensorBoardLogger(Callback):
    """Per-step losses and lr, per-epoch means and metrics, under ``log_dir``
    (``torch.utils.tensorboard``)."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            logger.warning("tensorboard is not installed; no TensorBoard logs (pip install tensorboard)")
            return
        self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.state.iteration or None)

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if self.writer is not None:
            for key in (*LOSS_KEYS, "lr"):
                if key in logs:
                    self.writer.add_scalar(f"train/{key}", logs[key], trainer.state.iteration)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in logs.items():
                group = "val" if key in METRIC_KEYS else "epoch"
                self.writer.add_scalar(f"{group}/{key}", value, epoch + 1)
            self.writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


class CurvePlotter(Callback):
    """``curves.png``: loss terms, lr and AP per epoch (matplotlib, Agg backend), redrawn after every
    epoch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        plot_history(trainer.state.history, self.path)


def plot_history(history: list[dict[str, float]], path: str | Path) -> Path:
    """Draw losses, lr and AP against the epoch into ``path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in LOSS_KEYS:
        if any(key in row for row in history):
            axes[0].plot(epochs, [row.get(key, float("nan")) for row in history], label=key)
    axes[1].plot(epochs, [row.get("lr", float("nan")) for row in history])
    for key in METRIC_KEYS:
        points = [(e, row[key]) for e, row in zip(epochs, history) if key in row]
        if points:
            axes[2].plot(*zip(*points), marker="o", label=key)
    for ax, title in zip(axes, ("loss", "learning rate", "validation AP")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    write_figure_atomic(fig, path)
    plt.close(fig)
    return path
