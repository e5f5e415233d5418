"""What quantisation-aware fine-tuning (``yoloxdet train ... train.quant=qat``) recovers of the int8 loss.

The official YOLOX-Nano (``yolox_nano.onnx``) on coco128 split in two halves by image (alternate images of
the sorted list): two fine-tunes on the *train* half through the normal trainer (``session.train``, the
official loss, no evaluation during training: no checkpoint is chosen by the test half), the same recipe
with ``train.quant=qat`` and its fake quantisation switched off (the control: what fine-tuning alone does)
or on. Every row is scored on the *test* half, which is never trained on; int8 rows are calibrated on the
train half. Rows, for the starting weights and each fine-tune's ``last.pt`` (loaded as an ordinary float
checkpoint): PyTorch fp32 and int8 files as ``yoloxdet export --int8`` writes them: onnx int8-ort
(onnxruntime's ``quantize_static``, the one QAT simulates) and, with ``--formats``, NNCF's onnx int8 and
OpenVINO int8.
Writes the ``qat`` section of docs/benchmarks.md.

    python benchmarks/bench_qat.py                      # one run (seed 0)
    python benchmarks/bench_qat.py --seeds 0,1,2        # mean +- sd over the QAT seeds
    python benchmarks/bench_qat.py --formats "onnx int8-ort,openvino int8"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch.ao.quantization import disable_fake_quant

from yoloxdet.bench.formats import export_formats
from yoloxdet.config import Config, apply_overrides
from yoloxdet.engine.evaluator import evaluate_coco, folder_samples, predict_coco_results
from yoloxdet.engine.session import train
from yoloxdet.engine.trainer import Callback, Trainer
from yoloxdet.export import ExportMetadata
from yoloxdet.export.calibration import CalibrationImages
from yoloxdet.inference.api import Detector
from yoloxdet.models.fuse import fuse_model
from yoloxdet.weights import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLOXDET_SHARED", REPO.parent / "shared"))
COCO128 = SHARED / "data" / "coco128"
NANO_ONNX = SHARED / "weights" / "yolox_nano.onnx"
SIZE = (416, 416)
# the int8 rows besides PyTorch fp32: onnxruntime's quantize_static (what QAT simulates), NNCF's ONNX file,
# NNCF's OpenVINO model (the last two take minutes each here: --formats)
ROWS = ("onnx int8-ort", "onnx int8", "openvino int8")


def split_coco128(workdir: Path) -> tuple[Path, dict, dict]:
    """Write the train half as a dataset YAML (no val split: nothing is evaluated while training); return it,
    and the COCO dicts of both halves."""
    gt = json.loads((COCO128 / "annotations" / "instances.json").read_text())
    images = sorted(gt["images"], key=lambda info: info["file_name"])
    halves = {}
    for name, part in (("train", images[0::2]), ("test", images[1::2])):
        ids = {info["id"] for info in part}
        halves[name] = {
            **gt,
            "images": part,
            "annotations": [a for a in gt["annotations"] if a["image_id"] in ids],
        }
        (workdir / f"{name}.json").write_text(json.dumps(halves[name]))
    spec = {
        "format": "coco",
        "train": {"images": str(COCO128 / "images"), "annotations": str(workdir / "train.json")},
    }
    (workdir / "train.yaml").write_text(yaml.safe_dump(spec))
    return workdir / "train.yaml", halves["train"], halves["test"]


def score_formats(
    weights: Path, test: dict, calibration: CalibrationImages, workdir: Path, formats: tuple[str, ...]
) -> dict[str, float]:
    """AP on ``test`` of ``weights`` in PyTorch fp32 and in each of ``formats`` (see :data:`ROWS`)."""
    model, info = load_model(weights, model_name="yolox-nano" if weights.suffix == ".onnx" else None)
    meta = ExportMetadata(info.model_name, tuple(info.class_names), SIZE, strides=tuple(model.strides))
    workdir.mkdir(parents=True)
    aps = {}
    wanted = ("pytorch fp32", *formats)
    for row in export_formats(fuse_model(model), meta, workdir, calibration, wanted, torch.get_num_threads()):
        if row.skipped is not None:
            raise SystemExit(f"{row.name}: {row.skipped}")
        detector = Detector(row.backend, info, conf_threshold=0.001, nms_iou_threshold=0.65, input_size=SIZE)
        samples = folder_samples(test, COCO128 / "images")
        aps[row.name] = evaluate_coco(test, predict_coco_results(detector, test, samples, progress=False)).ap
        print(f"{weights.name} {row.name}: AP {100 * aps[row.name]:.1f}", flush=True)
    return aps


class WithoutFakeQuant(Callback):
    """The control: the QAT run's model (BN frozen and folded, stem fixed) with fake quantisation off, so that
    the two fine-tunes differ in the int8 rounding only."""

    def on_train_start(self, trainer: Trainer) -> None:
        trainer.model.apply(disable_fake_quant)
        if trainer.ema is not None:
            trainer.ema.module.apply(disable_fake_quant)


def fine_tune_overrides(
    args: argparse.Namespace, seed: int, train_yaml: Path, out: Path, name: str
) -> list[str]:
    return [
        f"data.dataset={train_yaml}",
        "data.workers=0",
        "model.name=yolox-nano",
        f"train.weights={NANO_ONNX}",
        "train.quant=qat",
        f"train.epochs={args.epochs}",
        f"train.batch={args.batch}",
        f"train.lr_per_image={args.lr_per_image}",
        "train.warmup_epochs=0",
        "train.no_aug_epochs=0",
        f"train.input_size=[{SIZE[0]}, {SIZE[1]}]",
        "train.multiscale_range=0",
        f"train.seed={seed}",
        f"train.output_dir={out}",
        f"train.name={name}-seed{seed}",
    ]


def markdown(start: dict[str, float], runs: list[dict], args: argparse.Namespace) -> str:
    command = "python benchmarks/bench_qat.py " + " ".join(sys.argv[1:])
    ref = start["pytorch fp32"]
    seeds = ", ".join(str(r["seed"]) for r in runs)
    lines = [
        "## Quantisation-aware fine-tuning (int8 recovery, CPU)",
        "",
        f"Written by `{command.strip()}` on {platform.machine()}, torch {torch.__version__}. The official "
        "YOLOX-Nano @ 416 on coco128 split in two halves (alternate images). Two fine-tunes of the official "
        "weights on the 64 train images, the same recipe (`yoloxdet train train.yaml model.name=yolox-nano "
        f"train.weights=yolox_nano.onnx quant=qat epochs={args.epochs} batch={args.batch} "
        f"lr_per_image={args.lr_per_image:.4g} warmup_epochs=0 no_aug_epochs=0 multiscale_range=0`, Nano's "
        "official augmentation, no evaluation during training): the control with the fake quantisation "
        "switched off (BN still frozen and folded, the stem fixed), and QAT; each `last.pt` (an ordinary "
        "float checkpoint) goes through the same exports as the start. Every AP (COCO AP50:95, x100) is on "
        "the 64 *test* images, never trained on; int8 calibrated on the 64 train images (`--calibrate`, "
        "onnxruntime's own ranges: no range "
        "learnt in QAT is passed on). Drops are against the starting weights' PyTorch fp32 "
        f"({100 * ref:.1f}). coco128 images are COCO train2017 images, which the official weights were "
        "trained on: the fp32 gain of any fine-tune here says little; the int8 rows against the fine-tune's "
        "own fp32 are the figures to read. "
        + (
            f"One run per fine-tune (seed {seeds}): one number per cell, no spread measured."
            if len(runs) == 1
            else f"Fine-tune cells: mean +- sd over seeds {seeds}."
        ),
        "",
        "| format | start | drop | fine-tune, fake quant off | drop | QAT fine-tune | drop |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ap in start.items():
        cells = [name, f"{100 * ap:.1f}", f"{100 * (ref - ap):+.1f}"]
        for quant in ("none", "qat"):
            values = [100 * run[quant][name] for run in runs]
            mean = statistics.mean(values)
            spread = f" +- {statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells += [f"{mean:.1f}{spread}", f"{100 * ref - mean:+.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    minutes = "; ".join(
        f"seed {run['seed']}: {run['minutes']['none']:.1f} / {run['minutes']['qat']:.1f}" for run in runs
    )
    lines += ["", f"Training minutes, control / QAT (2 shared cores): {minutes}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    # 1/100 of the official lr: with BN folded, 1/10 moved the early layers by ~0.4% per step
    parser.add_argument("--lr-per-image", type=float, default=0.01 / 64 / 100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default="onnx int8-ort", help=f"comma-separated, of: {', '.join(ROWS)}")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-qat-") as tmp:
        workdir = Path(tmp)
        train_yaml, train_half, test = split_coco128(workdir)
        calibration = CalibrationImages(
            [COCO128 / "images" / info["file_name"] for info in train_half["images"]], SIZE, 64
        )
        formats = tuple(name.strip() for name in args.formats.split(",") if name.strip())
        unknown = set(formats) - set(ROWS)
        if unknown:
            parser.error(f"unknown --formats {sorted(unknown)}; choose from {', '.join(ROWS)}")
        start = score_formats(NANO_ONNX, test, calibration, workdir / "start", formats)
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            run: dict = {"seed": seed, "minutes": {}}
            for quant in ("none", "qat"):
                overrides = fine_tune_overrides(args, seed, train_yaml, workdir / "runs", quant)
                callbacks = (WithoutFakeQuant(),) if quant == "none" else ()
                began = time.perf_counter()
                config = apply_overrides(Config(), overrides)
                _, run_dir = train(config, progress=False, extra_callbacks=callbacks)
                run["minutes"][quant] = (time.perf_counter() - began) / 60
                run[quant] = score_formats(
                    run_dir / "last.pt", test, calibration, workdir / f"{quant}{seed}", formats
                )
            runs.append(run)
            text = markdown(start, runs, args)
            print(text, flush=True)
            if not args.no_write:
                write_section("qat", text, REPO / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
