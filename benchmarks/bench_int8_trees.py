"""int8 accuracy of a YOLOX-Nano fine-tuned by the tree-crown demo, on its held-out sites.

For each demo output folder (what ``python -m yoloxdet.demo --out DIR`` wrote:
``DIR/runs/treecrowns/last.pt``, the checkpoint the demo reports, and its data under ``DIR/data``):

1. export the checkpoint to every ONNX and OpenVINO row of ``yoloxdet bench --formats``
   (:func:`yoloxdet.bench.formats.export_formats`: fp32 ONNX, int8 ONNX by NNCF and by onnxruntime's
   ``quantize_static``, OpenVINO fp32 and int8), every int8 row calibrated on the run's *training* tiles (the
   train split of ``DIR/data/treecrowns.yaml``; checked disjoint from the held-out images);
2. run ``yoloxdet val`` on each held-out set (:func:`yoloxdet.demo.pipeline.evaluate_sets`, the demo's own
   evaluation: osbs, soap, both pooled, the YELL strip) for the checkpoint (PyTorch fp32) and each file;
3. write the table (AP50:95 and AP50 per set, the drop against PyTorch fp32) to the ``int8-trees`` section of
   docs/benchmarks.md.

    python benchmarks/bench_int8_trees.py /work/demo-runs/ours_s0 /work/demo-runs/ours_s1

The demo's folders are only read: the evaluation YAMLs go to a work folder beside a link to the data.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
from pathlib import Path

import torch

from yoloxdet.bench.formats import FormatResult, export_formats
from yoloxdet.config import ExportConfig
from yoloxdet.data.datasets import build_dataset
from yoloxdet.data.spec import load_dataset_spec
from yoloxdet.demo.pipeline import DemoPaths, evaluate_sets, training_steps
from yoloxdet.demo.treecrowns import EVAL_SETS, write_eval_yamls
from yoloxdet.export import ExportMetadata
from yoloxdet.export.calibration import CalibrationImages
from yoloxdet.inference.api import Detector
from yoloxdet.io import write_json_atomic
from yoloxdet.models.fuse import fuse_model
from yoloxdet.weights import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
FORMATS = ("pytorch", "onnx", "openvino")  # the rows of bench --formats that run on a CPU and take int8
QUANTIZERS = {  # who placed the Q/DQ and chose the ranges of each int8 row (see yoloxdet/export/int8.py)
    "onnx int8": "NNCF (`--int8-quantizer nncf`, default)",
    "onnx int8-ort": "onnxruntime quantize_static (`--int8-quantizer ort`)",
    "openvino int8": "NNCF (OpenVINO)",
}
GOAL = 1.0  # AP points: the int8 goal


def eval_yamls(paths: DemoPaths, workdir: Path) -> dict[str, Path]:
    """The demo's per-set evaluation YAMLs, written into ``workdir`` beside a link to the (read-only) data."""
    link = workdir / "data" / paths.data.name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(paths.data.resolve(), target_is_directory=True)
    return write_eval_yamls(link)


def calibration_set(train_yaml: Path, held_out: dict[str, Path], size: tuple[int, int], limit: int):
    """The run's training tiles as calibration images; fails if any held-out image is among them."""
    calibration = CalibrationImages(train_yaml, size, limit)
    chosen = {p.resolve() for p in calibration.paths}
    for name, yaml in held_out.items():
        files = build_dataset(load_dataset_spec(yaml), "val").records.image_files()
        leaked = [path for _, path in files if Path(path).resolve() in chosen]
        if leaked:
            raise ValueError(f"{train_yaml}: calibration includes held-out '{name}' images: {leaked[:3]}")
    return calibration


def run_one(root: Path, workdir: Path, args: argparse.Namespace) -> dict:
    """Export, then ``yoloxdet val`` every held-out set for PyTorch fp32 and each exported file."""
    paths = DemoPaths(root)
    checkpoint = paths.final_checkpoint()
    train_yaml = paths.data.parent / f"{paths.data.name}.yaml"  # the demo's dataset: its train split
    yamls = eval_yamls(paths, workdir)
    model, info = load_model(checkpoint)
    size = tuple(Detector.from_checkpoint(checkpoint).input_size)  # the size `yoloxdet val last.pt` uses
    metadata = ExportMetadata(
        info.model_name, tuple(info.class_names), size, strides=tuple(model.strides), head=info.head
    )
    calibration = calibration_set(train_yaml, yamls, size, args.calib_images)
    (workdir / "exports").mkdir()
    results: list[FormatResult] = export_formats(
        fuse_model(model), metadata, workdir / "exports", calibration, FORMATS
    )
    rows = []
    for result in results:
        result.backend = None  # `yoloxdet val` loads the file itself
        if result.skipped is not None:
            rows.append({"name": result.name, "skipped": result.skipped})
            continue
        weights = checkpoint if result.format == "pytorch" else result.path
        out = workdir / "eval" / result.name.replace(" ", "_")
        rows.append({"name": result.name, "sites": evaluate_sets(weights, yamls, out)})
    return {
        "run": str(root),
        "checkpoint": str(checkpoint),
        "steps": training_steps(checkpoint),
        "input_size": list(size),
        "calibration": f"{len(calibration)} training tiles of {train_yaml}",
        "sets": {name: _set_size(yaml) for name, yaml in yamls.items()},
        "demo_results": _demo_results(paths),
        "rows": rows,
    }


def _set_size(dataset_yaml: Path) -> dict[str, int]:
    gt = build_dataset(load_dataset_spec(dataset_yaml), "val").to_coco()
    return {"images": len(gt["images"]), "trees": len(gt["annotations"])}


def _demo_results(paths: DemoPaths) -> dict | None:
    """The demo's own ``yoloxdet val`` of the same checkpoint, if it finished (a check on the PyTorch row)."""
    return json.loads(paths.results.read_text())["sites"] if paths.results.is_file() else None


def table(run: dict) -> tuple[list[str], float]:
    """Markdown rows for one run, and the worst AP50:95 drop of an int8 row."""
    reference = next(r["sites"] for r in run["rows"] if r["name"] == "pytorch fp32")
    header = ["format", "quantiser"] + [f"{name} AP50:95 / AP50" for name in EVAL_SETS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    worst = 0.0
    for row in run["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['name']} | skipped: {row['skipped']} |" + " |" * len(EVAL_SETS))
            continue
        cells = [row["name"], QUANTIZERS.get(row["name"], "-")]
        for name in EVAL_SETS:
            got, ref = row["sites"][name], reference[name]
            drop, drop50 = 100 * (ref["AP50_95"] - got["AP50_95"]), 100 * (ref["AP50"] - got["AP50"])
            if "int8" in row["name"]:
                worst = max(worst, drop)
            text = f"{100 * got['AP50_95']:.1f} / {100 * got['AP50']:.1f}"
            cells.append(text if row["name"] == "pytorch fp32" else f"{text} ({drop:+.1f} / {drop50:+.1f})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines, worst


def _demo_check(run: dict) -> str:
    """Whether the PyTorch row is the demo's own result for the same checkpoint (when it wrote one)."""
    if run["demo_results"] is None:
        return ""
    ours = next(r["sites"] for r in run["rows"] if r["name"] == "pytorch fp32")
    same = all(
        abs(ours[name][key] - run["demo_results"][name][key]) < 1e-9
        for name in EVAL_SETS
        for key in ("AP50", "AP50_95")
    )
    return f" PyTorch fp32 row {'equals' if same else 'DIFFERS from'} the demo's own results.json."


def markdown(runs: list[dict], args: argparse.Namespace) -> str:
    command = "python benchmarks/bench_int8_trees.py " + " ".join(sys.argv[1:])
    if args.from_results:  # the measuring command: the demo folders the results came from
        command = "python benchmarks/bench_int8_trees.py " + " ".join(run["run"] for run in runs)
    sizes = runs[0]["sets"]
    lines = [
        "## int8 on the tree-crown demo's held-out sites (CPU)",
        "",
        # platform.machine(), not platform.processor(): the latter forks `uname -p`, and this process
        # segfaulted there (or near) after the in-process `yoloxdet val` runs of OpenVINO/onnxruntime files
        f"Written by `{command.strip()}` on {platform.machine()}, torch "
        f"{torch.__version__}. The model: YOLOX-Nano fine-tuned by `python -m yoloxdet.demo` (its `last.pt`, "
        "the checkpoint the demo reports). Each row is one file of `yoloxdet bench --formats` "
        "(`yoloxdet.bench.formats.export_formats`), int8 calibrated on the run's training tiles (never on "
        "the held-out images); each cell is `yoloxdet val FILE --data SET.yaml` on a held-out set, as the "
        "demo evaluates (COCO AP, conf 0.001, NMS 0.65): AP50:95 / AP50 (x100), and in brackets the drop "
        "against PyTorch fp32 (positive = int8 lost AP). The sets are small ("
        + "; ".join(f"{name}: {n['images']} images, {n['trees']} trees" for name, n in sizes.items())
        + "), so AP moves in coarse steps: one tree more or less found is worth 1-3 AP50 points on one "
        "site.",
        "",
    ]
    for run in runs:
        rows, worst = table(run)
        verdict = "met" if worst <= GOAL else "NOT met"
        lines += [
            f"### {Path(run['run']).name}: {run['steps']} training steps, input {run['input_size'][0]} px",
            "",
            f"Calibration: {run['calibration']}. Worst int8 AP50:95 drop {worst:+.1f} "
            f"(goal <= {GOAL:.1f}: {verdict}).{_demo_check(run)}",
            "",
            *rows,
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="demo output folders (--out of the demo)")
    parser.add_argument(
        "--calib-images", type=int, default=ExportConfig.calib_images, help="at most this many training tiles"
    )
    parser.add_argument("--keep", type=Path, help="keep the exported files and metrics here")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--from-results", action="store_true", help="RUNS are results.json files of --keep: render only"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.from_results:
        text = markdown([json.loads(path.read_text()) for path in args.runs], args)
        print(text)
        if not args.no_write:
            write_section("int8-trees", text, REPO / "docs" / "benchmarks.md")
        return
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-int8-trees-") as tmp:
        base = args.keep or Path(tmp)
        for root in args.runs:
            workdir = base / root.name
            workdir.mkdir(parents=True, exist_ok=False)
            runs.append(run_one(root, workdir, args))
            write_json_atomic(workdir / "results.json", runs[-1])
            # the section is rewritten after each run, so that finished runs are kept whatever follows
            text = markdown(runs, args)
            print(text, flush=True)
            if not args.no_write:
                write_section("int8-trees", text, REPO / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
