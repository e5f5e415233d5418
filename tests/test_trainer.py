"""Trainer behaviour on a tiny model and loader: phases, lr per step, accumulation, non-finite losses, best
checkpoint and early stopping, time budget, SIGTERM, multiscale resizing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from yoloxdet.config import TrainConfig
from yoloxdet.engine.checkpoint import load_training_checkpoint
from yoloxdet.engine.multiscale import MultiScale, multiscale_for, resize_batch
from yoloxdet.engine.optim import build_optimizer
from yoloxdet.engine.schedule import LRSchedule, Phase, lr_at
from yoloxdet.engine.trainer import Callback, Trainer, TrainingDiverged, iterations_per_epoch
from yoloxdet.structures import Targets


class ListLoader:
    def __init__(self, batches: int = 4) -> None:
        gen = torch.Generator().manual_seed(0)
        targets = Targets.from_list([torch.tensor([[8.0, 8.0, 4.0, 4.0]])] * 2, [torch.tensor([0])] * 2)
        self.batches = [(torch.rand(2, 3, 16, 16, generator=gen), targets) for _ in range(batches)]
        self.epochs: list[tuple[int, bool]] = []

    def set_epoch(self, epoch: int, mosaic: bool) -> None:
        self.epochs.append((epoch, mosaic))

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class Recorder:
    """A loss that records the phase and input size it was called with."""

    def __init__(self, value: float = 1.0, sleep: float = 0.0) -> None:
        self.value, self.sleep = value, sleep
        self.calls: list[tuple[Phase, tuple[int, int]]] = []

    def __call__(self, model: nn.Module, images: torch.Tensor, targets: Targets, phase: Phase) -> dict:
        self.calls.append((phase, tuple(images.shape[-2:])))
        time.sleep(self.sleep)
        out = model(images)
        return {"total": out.square().mean() * self.value, "iou": out.detach().mean()}


def tiny_trainer(
    loader: ListLoader,
    loss,
    *,
    epochs: int = 4,
    accumulate: int = 1,
    evaluate=None,
    run_dir: Path | None = None,
    callbacks=(),
    multiscale=None,
    **overrides,
) -> Trainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    config = TrainConfig(
        epochs=epochs,
        batch=2 * accumulate,
        accumulate=accumulate,
        warmup_epochs=1,
        no_aug_epochs=1,
        **overrides,
    )
    schedule = LRSchedule(0.1, iterations_per_epoch(len(loader), accumulate), epochs, 1, 1)
    optimizer = build_optimizer(model, lr=0.0, momentum=0.9, weight_decay=5e-4)
    return Trainer(
        model,
        loader,
        optimizer,
        config=config,
        schedule=schedule,
        loss_fn=loss,
        evaluate=evaluate,
        run_dir=run_dir,
        callbacks=callbacks,
        multiscale=multiscale,
    )


class Logs(Callback):
    def __init__(self) -> None:
        self.steps: list[dict] = []

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.steps.append(dict(logs))


def test_phases_reach_loader_and_loss_and_lr_follows_schedule() -> None:
    loader, loss, logs = ListLoader(), Recorder(), Logs()
    trainer = tiny_trainer(loader, loss, epochs=4, callbacks=[logs])
    trainer.fit()
    # official off-by-one: with 1 no-aug epoch, the last 2 of 4 epochs run without mosaic and with L1
    assert loader.epochs == [(0, True), (1, True), (2, False), (3, False)]
    assert [p.l1 for p, _ in loss.calls] == [False] * 8 + [True] * 8
    assert [s["lr"] for s in logs.steps] == [lr_at(k, trainer.schedule) for k in range(16)]
    assert logs.steps[0]["lr"] == 0.0 and all("data_s" in s and "compute_s" in s for s in logs.steps)


def test_gradient_accumulation_steps_once_per_group() -> None:
    loader, loss, logs = ListLoader(batches=5), Recorder(), Logs()
    trainer = tiny_trainer(loader, loss, epochs=2, accumulate=2, callbacks=[logs])
    state = trainer.fit()
    assert trainer.schedule.iters_per_epoch == 3  # groups of 2, 2, 1
    assert state.iteration == 6 and len(loss.calls) == 10 and len(logs.steps) == 6


class NanBackward(torch.autograd.Function):
    """Identity forward, NaN gradient: a finite loss whose backward pass overflows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.full_like(grad, float("nan"))


def test_nonfinite_gradients_of_a_finite_loss_skip_the_step(caplog) -> None:
    def loss(model: nn.Module, images: torch.Tensor, targets: Targets, phase: Phase) -> dict:
        out = NanBackward.apply(model(images))
        return {"total": out.square().mean(), "iou": out.detach().mean()}

    trainer = tiny_trainer(ListLoader(batches=20), loss, epochs=1)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}
    with pytest.raises(TrainingDiverged, match=r"loss or its gradients were not finite"):
        trainer.fit()
    assert "non-finite gradients at iteration 0" in caplog.text
    for key, value in before.items():
        if "running" not in key:
            assert torch.equal(trainer.model.state_dict()[key], value), key


def test_nonfinite_loss_skips_then_stops_with_a_message() -> None:
    trainer = tiny_trainer(ListLoader(batches=20), Recorder(value=float("nan")), epochs=1)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}
    with pytest.raises(TrainingDiverged, match=r"learning rate is too high.*bad boxes"):
        trainer.fit()
    assert trainer.state.nonfinite_streak == 10
    for key, value in before.items():
        if "running" not in key:  # BN statistics move in the forward pass; weights must not
            assert torch.equal(trainer.model.state_dict()[key], value), key


def test_best_checkpoint_and_early_stopping(tmp_path: Path) -> None:
    aps = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    trainer = tiny_trainer(
        ListLoader(batches=2),
        Recorder(),
        epochs=5,
        evaluate=lambda m: {"AP": next(aps)},
        run_dir=tmp_path,
        eval_interval=1,
        patience=2,
    )
    state = trainer.fit()
    assert state.epoch == 4 and (state.best_ap, state.best_epoch) == (0.3, 2)
    best = load_training_checkpoint(tmp_path / "best.pt")
    assert best["state"]["epoch"] == 2 and best["state"]["best_ap"] == 0.3
    assert load_training_checkpoint(tmp_path / "last.pt")["state"]["epoch"] == 4
    assert [row.get("AP") for row in state.history] == [0.1, 0.3, 0.2, 0.25]
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave nothing behind


def test_time_budget_ends_the_schedule_at_the_deadline() -> None:
    evaluated = []
    trainer = tiny_trainer(
        ListLoader(batches=4),
        Recorder(sleep=0.05),
        epochs=1000,
        max_minutes=0.6 / 60,
        evaluate=lambda m: evaluated.append(1) or {"AP": 0.0},
    )
    state = trainer.fit()
    assert 0 < state.epoch < 20 and evaluated  # stopped early, with a final evaluation
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.05)  # cosine reached its floor
    assert trainer.current_phase() == Phase(mosaic=False, l1=True)


class Spinner(Recorder):
    """A loss that burns ``spin`` seconds of CPU time in this process before computing."""

    def __init__(self, spin: float) -> None:
        super().__init__()
        self.spin = spin

    def __call__(self, model: nn.Module, images: torch.Tensor, targets: Targets, phase: Phase) -> dict:
        end = time.process_time() + self.spin
        while time.process_time() < end:
            pass
        return super().__call__(model, images, targets, phase)


def test_cpu_budget_counts_computation_not_waiting() -> None:
    tiny_trainer(ListLoader(batches=4), Recorder(), epochs=1).fit()  # one-time costs of a first run
    # 12 steps that each wait 0.2 s: past a 1 s wall budget, far inside a 1 s CPU budget
    budget = {"epochs": 3, "max_minutes": 1.0 / 60}
    waiting = tiny_trainer(ListLoader(batches=4), Recorder(sleep=0.2), budget_clock="cpu", **budget).fit()
    assert (waiting.epoch, waiting.iteration) == (3, 12)
    on_the_wall = tiny_trainer(ListLoader(batches=4), Recorder(sleep=0.2), budget_clock="wall", **budget)
    assert on_the_wall.fit().iteration < 12
    # 12 steps that each compute 0.1 s: the CPU budget ends the run, with the cosine at its floor
    trainer = tiny_trainer(ListLoader(batches=4), Spinner(0.1), budget_clock="cpu", **budget)
    computing = trainer.fit()
    assert computing.iteration < 12 and trainer.elapsed_s() >= 1.0
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.05)


def test_cpu_clock_counts_child_processes_live_and_finished() -> None:
    import subprocess
    import sys

    from yoloxdet.engine.budget_clock import budget_clock

    spin = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"
    clock = budget_clock("cpu")
    start = clock()
    child = subprocess.Popen(
        [sys.executable, "-c", spin + "print('spun', flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "spun"
        live = clock()  # the child is alive and sleeping: its 0.5 s are counted through the process tree
        assert live - start >= 0.45
    finally:
        child.kill()
        child.wait()
    subprocess.run([sys.executable, "-c", spin], check=True)  # finished and waited for
    assert clock() - live >= 0.45
    assert budget_clock("wall")() > 0 and clock() >= live  # never backwards


def test_sigterm_saves_and_returns(tmp_path: Path) -> None:
    class Kill(Callback):
        def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
            if trainer.state.iteration == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    trainer = tiny_trainer(ListLoader(batches=4), Recorder(), epochs=3, run_dir=tmp_path, callbacks=[Kill()])
    state = trainer.fit()
    assert (state.iteration, state.epoch, state.batch_in_epoch) == (3, 0, 3)
    saved = load_training_checkpoint(tmp_path / "last.pt")
    assert saved["state"]["iteration"] == 3
    assert signal.getsignal(signal.SIGTERM) is previous


def test_multiscale_sizes_and_box_scaling() -> None:
    ms = MultiScale((64, 96), 2, 4, interval=10, seed=3)
    assert all(ms.size_at(i) == (64, 96) for i in range(10))
    sizes = {ms.size_at(i) for i in range(10, 2000, 10)}
    assert sizes == {(64, 96), (96, 128), (128, 192)}  # h 32·{2,3,4}; w 32·int(units·1.5), as official
    assert ms.size_at(25) == ms.size_at(20) == MultiScale((64, 96), 2, 4, interval=10, seed=3).size_at(29)
    assert multiscale_for((640, 640), 5, None, 10, 0) == MultiScale((640, 640), 15, 25, 10, 0)
    assert multiscale_for((416, 416), 5, (10, 20), 10, 0).low == 10
    assert multiscale_for((416, 416), 0, (10, 20), 10, 0) is None
    images = torch.zeros(1, 3, 32, 64)
    images[0, :, 8:16, 16:32] = 1.0
    targets = Targets.from_list([torch.tensor([[24.0, 12.0, 16.0, 8.0]])], [torch.tensor([1])])
    resized, scaled = resize_batch(images, targets, (64, 32))
    assert resized.shape == (1, 3, 64, 32)
    torch.testing.assert_close(scaled.boxes_cxcywh[0, 0], torch.tensor([12.0, 24.0, 8.0, 16.0]))
    assert resized[0, 0, 24, 12] == 1.0 and resized[0, 0, 5, 5] == 0.0  # the box moved with its pixels


def test_precise_bn_recomputes_statistics_from_batches() -> None:
    from yoloxdet.engine.precise_bn import recompute_bn_stats

    model = nn.Sequential(nn.Identity(), nn.BatchNorm2d(3, momentum=0.03))
    model.eval()
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 3, 5, 5, generator=gen) * 3 + 7 for _ in range(3)]
    weight = model[1].weight.detach().clone()
    assert recompute_bn_stats(model, batches) == 12
    bn = model[1]
    torch.testing.assert_close(bn.running_mean, torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0))
    unbiased = torch.stack([b.transpose(0, 1).reshape(3, -1).var(dim=1) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_var, unbiased)
    assert bn.momentum == 0.03 and not model.training and torch.equal(bn.weight, weight)
