"""From scratch, YOLOX-Nano learns a generated shapes dataset: validation AP50 ends far above its value at
initialisation (real loader, SimOTA, loss, EMA, schedule and COCO evaluator; YOLO txt dataset in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _shapes_data import write_shapes_dataset

from yoloxdet.config import load_config
from yoloxdet.engine.session import train
from yoloxdet.engine.trainer import Callback, Trainer

SIZE, TRAIN_IMAGES = 160, 32
RECIPE = [
    "model.name=yolox-nano",
    f"train.input_size={SIZE}",
    "train.batch=8",
    "epochs=30",
    "warmup_epochs=1",
    "no_aug_epochs=5",
    "eval_interval=30",
    "precise_bn=4",
    "lr_per_image=0.00125",
    "multiscale_range=0",
    "workers=0",
    "eval.batch=16",
    "augment.mosaic_prob=0",
    "augment.degrees=0",
    "augment.shear=0",
    "augment.hsv_prob=0",
]


class InitialMetrics(Callback):
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        self.metrics = trainer.evaluate(trainer.ema.module.eval())


@pytest.mark.slow
def test_nano_learns_shapes_from_scratch(tmp_path: Path) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=TRAIN_IMAGES, val=16, size=SIZE)
    config = load_config(None, [f"data.dataset={data}", f"output_dir={tmp_path / 'runs'}", *RECIPE])
    initial = InitialMetrics()
    state, run_dir = train(config, progress=False, extra_callbacks=(initial,))
    first_loss, last_loss = state.history[0]["total"], state.history[-1]["total"]
    assert last_loss < 0.7 * first_loss
    assert initial.metrics["AP50"] < 0.02, initial.metrics
    best_ap50 = max(row.get("AP50", 0.0) for row in state.history)
    assert best_ap50 > max(0.05, 10 * initial.metrics["AP50"]), (initial.metrics, state.history[-1])
    assert (run_dir / "best.pt").is_file()
