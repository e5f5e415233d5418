"""`yoloxdet ablate`: every report file from a tiny two-variant run, and variants YAML errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from yoloxdet.assign import available
from yoloxdet.cli import main
from yoloxdet.config import Config, ConfigError, apply_overrides
from yoloxdet.data.synthetic import write_shapes_dataset
from yoloxdet.experiments.ablate import DEFAULT_VARIANTS, load_variants, parse_variants, variants_yaml

METRICS = ("AP", "AP50", "total", "iou", "obj", "cls", "l1")


@pytest.mark.slow  # two tiny trainings with COCO evaluation: ~15 s alone, more on a busy machine
def test_ablate_writes_every_report_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=8, val=4, size=64, seed=1)
    variants = tmp_path / "variants.yaml"
    variants.write_text(
        yaml.safe_dump(
            {
                "variants": [
                    {
                        "name": "coupled-single",
                        "overrides": {
                            "model.head": "coupled",
                            "train.assigner": "single",
                            "augment.mosaic_prob": 0.0,
                        },
                    },
                    {"name": "simota", "overrides": ["train.assigner=simota"]},
                ]
            }
        )
    )
    out = tmp_path / "report"
    code = main(
        [
            "ablate",
            str(data),
            "--variants",
            str(variants),
            "--budget-iters",
            "2",
            "--size",
            "64",
            "-o",
            str(out),
            "train.batch=4",
            "data.workers=0",
            "train.multiscale_range=0",
            "train.ema=false",
        ]
    )
    assert code == 0
    for name in (
        "summary.md",
        "summary.csv",
        "summary.json",
        "variants.yaml",
        *(f"curve_{m}.png" for m in METRICS),
    ):
        assert (out / name).stat().st_size > 0, name
    rows = json.loads((out / "summary.json").read_text())
    assert [r["variant"] for r in rows] == ["coupled-single", "simota"]
    for row in rows:
        assert row["iterations"] == 2  # 8 images / batch 4 = 2 steps: one epoch
        assert 0.0 <= row["AP50:95"] <= row["AP50"] <= 1.0
        assert row["assign ms/iter"] > 0
        steps = list(csv.DictReader((Path(row["run"]) / "iterations.csv").open()))
        assert [int(float(s["iteration"])) for s in steps] == [1, 2]
    saved = yaml.safe_load((Path(rows[0]["run"]) / "config.yaml").read_text())
    assert (saved["model"]["head"], saved["train"]["assigner"], saved["train"]["epochs"]) == (
        "coupled",
        "single",
        1,
    )
    table = (out / "summary.md").read_text()
    assert "| variant |" in table and "coupled-single" in table and "simota" in table
    assert "simota" in capsys.readouterr().out


def test_unknown_variant_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text("variants:\n  - name: a\n    descripton: typo\n")
    with pytest.raises(ConfigError, match=r"v\.yaml.*descripton.*Did you mean 'description'"):
        load_variants(path)


def test_variant_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="non-empty list"):
        parse_variants({"variants": []})
    with pytest.raises(ConfigError, match="unique"):
        parse_variants([{"name": "a"}, {"name": "a"}])
    with pytest.raises(ConfigError, match="only 'variants'"):
        parse_variants({"variants": [{"name": "a"}], "extra": 1})
    with pytest.raises(ConfigError, match="folder name"):
        parse_variants([{"name": "../escape"}])
    with pytest.raises(ConfigError, match="overrides"):
        parse_variants([{"name": "a", "overrides": 3}])


def test_bad_override_fails_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=2, val=1, size=64)
    variants = tmp_path / "v.yaml"
    variants.write_text("variants:\n  - name: fine\n  - name: bad\n    overrides: {train.asigner: ota}\n")
    code = main(
        ["ablate", str(data), "--variants", str(variants), "--budget-iters", "1", "-o", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "variant 'bad'" in err and "Did you mean 'assigner'" in err
    assert not (tmp_path / "o" / "fine").exists()


def test_default_roadmap_is_valid_and_round_trips() -> None:
    assigners = set(available())
    for variant in DEFAULT_VARIANTS:
        config = apply_overrides(Config(), variant.overrides)
        assert config.train.assigner in assigners and config.model.head in ("coupled", "decoupled")
    reread = parse_variants(yaml.safe_load(variants_yaml(DEFAULT_VARIANTS)))
    assert [v.name for v in reread] == [v.name for v in DEFAULT_VARIANTS]
    for again, variant in zip(reread, DEFAULT_VARIANTS):
        assert apply_overrides(Config(), again.overrides) == apply_overrides(Config(), variant.overrides)


def test_iteration_log_times_assignment_and_tells_an_interrupted_run() -> None:
    from _synthetic_train import StopAfter, SyntheticLoader, make_trainer

    from yoloxdet.experiments.ablate import IterationLog

    interrupted, complete = IterationLog(), IterationLog()
    make_trainer(
        SyntheticLoader(num_batches=2),
        epochs=2,
        callbacks=(interrupted, StopAfter(1)),
        loss_fn=interrupted.loss_fn("simota"),
    ).fit()
    make_trainer(
        SyntheticLoader(num_batches=2), epochs=1, callbacks=(complete,), loss_fn=complete.loss_fn("simota")
    ).fit()
    assert not interrupted.completed and complete.completed
    assert [row["iteration"] for row in complete.steps] == [1.0, 2.0]
    assert all(row["assign_ms"] > 0 for row in complete.steps + interrupted.steps)
