"""An interrupted CPU run resumed from its checkpoint ends with weights identical to an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _synthetic_train import StopAfter, SyntheticLoader, make_trainer

from yoloxdet.engine.checkpoint import load_training_checkpoint


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_resume_mid_epoch_is_bit_identical(tmp_path: Path) -> None:
    full = make_trainer(SyntheticLoader(), run_dir=tmp_path / "full")
    full.fit()
    assert full.state.iteration == 9 and full.state.epoch == 3

    interrupted = make_trainer(SyntheticLoader(), run_dir=tmp_path / "cut", callbacks=[StopAfter(4)])
    interrupted.fit()
    assert (interrupted.state.epoch, interrupted.state.batch_in_epoch) == (1, 1)  # stopped inside epoch 2

    payload = load_training_checkpoint(tmp_path / "cut" / "last.pt")
    torch.manual_seed(123)  # whatever happened in between, resume restores the RNG
    resumed = make_trainer(SyntheticLoader(), run_dir=tmp_path / "cut", model_seed=7)
    resumed.resume(payload)
    assert resumed.optimizer.param_groups[0]["lr"] == interrupted.optimizer.param_groups[0]["lr"]
    resumed.fit()

    assert resumed.state.iteration == 9
    _assert_same(resumed.model.state_dict(), full.model.state_dict())
    _assert_same(resumed.ema.module.state_dict(), full.ema.module.state_dict())
    final = load_training_checkpoint(tmp_path / "cut" / "last.pt")
    _assert_same(final["model"], full.ema.module.state_dict())  # checkpoints carry the EMA weights as "model"
    # the weights really moved, so equality is not trivial
    assert not torch.equal(
        payload["train_model"]["head.cls_preds.0.weight"], final["train_model"]["head.cls_preds.0.weight"]
    )
