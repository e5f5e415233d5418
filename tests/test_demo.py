"""The demo end to end on a tiny budget: real tree-crown data from the deepforest wheel (PyPI), the shared
official weights when present, and every public command. Checks the report files and that metrics are finite
in [0, 1]."""

import json
import math
import zipfile

import pytest

from yoloxdet.config import load_config
from yoloxdet.demo import treecrowns
from yoloxdet.demo.__main__ import RECIPE, SCRATCH_RECIPE, main
from yoloxdet.demo.pipeline import evaluate_sets
from yoloxdet.demo.report import finite_unit
from yoloxdet.demo.treecrowns import crop_boxes
from yoloxdet.inference.tiling import tile_origins


def test_tiles_cover_the_image_and_boxes_are_cropped():
    assert tile_origins(1000, 400, 300) == [0, 300, 600]
    assert tile_origins(300, 400, 300) == [0]
    import numpy as np

    boxes = np.array([[10, 10, 50, 50], [380, 10, 420, 50], [395, 10, 460, 50]], np.float32)
    cropped = crop_boxes(boxes, 0, 0, 400, 400, min_visible=0.5)
    # the first box whole, the second half inside (kept, clipped), the third mostly outside (dropped)
    assert cropped.tolist() == [[10, 10, 50, 50], [380, 10, 400, 50]]


def test_demo_recipes_are_valid_configs_and_differ_only_where_documented():
    finetune, scratch = load_config(RECIPE), load_config(SCRATCH_RECIPE)  # unknown keys would raise
    assert scratch.train.min_lr_ratio == 1.0 and scratch.train.lr_per_image == 8 * finetune.train.lr_per_image
    same = {"min_lr_ratio": finetune.train.min_lr_ratio, "lr_per_image": finetune.train.lr_per_image}
    assert scratch.train.__class__(**{**vars(scratch.train), **same}) == finetune.train
    assert scratch.augment.mosaic_prob == 0.5 and finetune.augment.mosaic_prob == 1.0
    augment = scratch.augment.__class__(**{**vars(scratch.augment), "mosaic_prob": 1.0})
    assert (scratch.model, augment, scratch.eval) == (finetune.model, finetune.augment, finetune.eval)


@pytest.mark.slow
def test_fast_demo_writes_every_report_file(tmp_path):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "--cpu-minutes",
                "0.05",
                "--max-tiles",
                "4",
                "--calibration-images",
                "8",
                "--out",
                str(out),
                "train.eval_interval=1",
            ]
        )
        == 0
    )
    report = out / "report"
    for name in ("report.md", "metrics.json", "pr_curve.png", "training_curves.png"):
        assert (report / name).is_file(), name
    assert list(report.glob("pred_val_*.png")) and list(report.glob("pred_test_*.png"))
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics) == {"val", "test", "whole", "sites"}
    assert metrics["whole"]["boxes"] == 574 and (report / "whole_tiled.png").is_file()
    for key in ("AP50_tiled", "AP50_single"):
        assert finite_unit(metrics["whole"][key]), (key, metrics["whole"])
    for split in (metrics["val"], metrics["test"]):
        for key in ("AP50", "AP50_95", "precision", "recall", "F1"):
            assert math.isfinite(split[key]) and 0.0 <= split[key] <= 1.0, (key, split[key])
    text = (report / "report.md").read_text()
    assert "pr_curve.png" in text and "OSBS_029" in text and "SOAP_061" in text
    # the run's summary: per site and pooled cross-site, on the CPU clock
    results = json.loads((out / "results.json").read_text())
    assert results["budget"] == {"minutes": 0.05, "clock": "cpu"} and results["steps"] > 0
    assert set(results["sites"]) == {"osbs", "soap", "cross", "strip"}
    for site in results["sites"].values():
        assert finite_unit(site["AP50"]) and finite_unit(site["AP50_95"]), site
    resolved = load_config(out / "runs" / "treecrowns" / "config.yaml")
    assert resolved.train.budget_clock == "cpu" and resolved.train.max_minutes == 0.05
    # the summary names the weights it evaluated, which benchmarks evaluate again (bench_eval_levers.py)
    weights = out / results["checkpoint"]
    assert weights == out / "runs" / "treecrowns" / "last.pt" and weights.is_file()
    soap = {"soap": treecrowns.write_eval_yamls(out / "data" / "treecrowns")["soap"]}
    again = evaluate_sets(weights, soap, tmp_path / "again", ["--tta", "hflip"])
    assert finite_unit(again["soap"]["AP50"])
    assert json.loads((tmp_path / "again" / "metrics_soap.json").read_text())["tta"] == "hflip"


def test_soap_labels_merge_to_tree_and_cross_site_sets_pool_both_sites(tmp_path):
    from yoloxdet.data.datasets import build_dataset
    from yoloxdet.data.spec import load_dataset_spec

    wheel = treecrowns.fetch_wheel(tmp_path / "cache")
    with zipfile.ZipFile(wheel) as zf:
        soap_xml = zf.read("deepforest/data/SOAP_061.xml")
    assert soap_xml.count(b"<name>Dead</name>") == 28 and soap_xml.count(b"<name>Alive</name>") == 9
    assert len(treecrowns.read_voc_boxes(soap_xml, "SOAP_061.xml")) == 37
    with pytest.raises(ValueError, match=r"SOAP_061\.xml: unexpected class .Car."):
        treecrowns.read_voc_boxes(soap_xml.replace(b"Dead", b"Car"), "SOAP_061.xml")
    data = tmp_path / "data" / "treecrowns"
    treecrowns.prepare(wheel, data)
    yamls = treecrowns.write_eval_yamls(data)
    sizes = {
        name: (len(ds), int(sum(len(ds.load(i).boxes_xyxy) for i in range(len(ds)))))
        for name, ds in ((n, build_dataset(load_dataset_spec(y), "val")) for n, y in yamls.items())
    }
    assert sizes["soap"] == (1, 37) and sizes["osbs"][0] == 1
    assert sizes["cross"] == (2, sizes["osbs"][1] + 37)


@pytest.mark.slow
def test_demo_without_weights_trains_from_scratch_with_the_scratch_recipe(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--minutes", "0.02", "--max-tiles", "2", "--weights", "none", "--out", str(out)]) == 0
    assert "training YOLOX-Nano from scratch" in capsys.readouterr().out
    resolved = load_config(out / "runs" / "treecrowns" / "config.yaml")
    assert resolved.train.min_lr_ratio == 1.0 and resolved.train.weights == ""
    assert (out / "report" / "report.md").is_file()
