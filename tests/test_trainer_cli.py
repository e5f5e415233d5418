"""`yoloxdet train`: argument handling, one-line errors, and a tiny end-to-end run with its run folder and
resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from _shapes_data import write_shapes_dataset

from yoloxdet.cli import main
from yoloxdet.commands.train import split_items
from yoloxdet.engine.checkpoint import load_training_checkpoint


def test_split_items_expands_aliases() -> None:
    assert split_items(["d.yaml", "model=yolox-nano", "epochs=3", "weights=x.pt"]) == (
        "d.yaml",
        ["model.name=yolox-nano", "epochs=3", "train.weights=x.pt"],
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "epochs=1"], "no dataset"),
        (["train", "d.yaml", "epoch=1"], "Did you mean"),
        (["train", "a.yaml", "b.yaml"], "two dataset files"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_resume_rejects_other_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bogus = tmp_path / "last.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(bogus)]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_run_writes_the_run_folder_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=8, val=4, size=64)
    common = [
        "input_size=64",
        "batch=4",
        "workers=0",
        "multiscale_range=0",
        "no_aug_epochs=0",
        "warmup_epochs=1",
        "eval_interval=1",
        f"output_dir={tmp_path / 'runs'}",
        "train.name=tiny",
        "--no-progress",
    ]
    assert main(["train", str(data), "model=yolox-nano", "epochs=1", *common]) == 0
    run = tmp_path / "runs" / "tiny"
    for name in ("config.yaml", "results.csv", "curves.png", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert len(rows) == 1 and {
        "total",
        "iou",
        "obj",
        "cls",
        "lr",
        "AP",
        "AP50",
        "data_s",
        "compute_s",
    } <= set(rows[0])
    first = load_training_checkpoint(run / "last.pt")
    assert first["class_names"] == ["rectangle", "ellipse"] and first["config"]["model"]["num_classes"] == 2

    assert main(["train", "--resume", str(run / "last.pt"), "epochs=2", "--no-progress"]) == 0
    resumed = load_training_checkpoint(run / "last.pt")
    assert resumed["state"]["epoch"] == 2 and resumed["state"]["iteration"] == 2 * first["state"]["iteration"]
    assert len(list(csv.DictReader((run / "results.csv").open()))) == 2
    assert "trained 2 epoch(s)" in capsys.readouterr().out
