"""Scale: start-up, index memory, loader throughput and worker memory on COCO-size splits, ours vs the peer's
(pixeltable-yolox, official) ``CocoDataset``, in the same run; plus ``yoloxdet val`` on 5,000 images.

Splits of N images are generated from coco128 (files repeated through symlinks, annotations copied with new
ids: 128 images -> 939 boxes, so 120k images -> ~880k boxes), or ``--real DIR`` reads a real one laid out as
``DIR/images`` + ``DIR/annotations/instances.json``. Every figure is measured in a fresh process:

- first start: ``checked_dataset`` with an empty check cache (annotations read, every image header checked,
  index saved), with the seconds of each of its stages, vs the peer's ``CocoDataset(...)`` init (annotations
  read, no image checks);
- cached start: ``checked_dataset`` again (the saved index is loaded);
- index memory: RSS after the start minus RSS just before it (imports done);
- worker memory: RSS and USS (private pages) of the main process and each of 4 loader workers, after 100 and
  after 2,000 batches (batch 2, 320x320, mosaic + mixup);
- loader throughput: samples/s with 2 workers (batch 8, 640x640, mosaic + mixup, p = 1);
- val (``--val``): ``yoloxdet val`` of YOLOX-Nano (official ONNX) on a 5,000-image split (``--val-images``),
  images decoded in a loader process while the model runs (and with ``--val-serial`` in the main process),
  with stage times.

All sizes given run in one invocation, interleaved turn by turn (every size in each turn), so the growth from
the smallest to the largest, reported per stage, is not a difference of machine load. Results accumulate in
``WORK/results.json``; the ``scale`` section of docs/benchmarks.md is written from them. Usage::

    .venv/bin/python benchmarks/bench_scale.py --images 20000 120000 --turns 3 --val
    .venv/bin/python benchmarks/bench_scale.py --images 20000 120000 --turns 1 --starts-only  # start-up only
    .venv/bin/python benchmarks/bench_scale.py --images --val --val-images 500 --no-write  # val only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import peer_mosaic
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
COCO128 = REPO.parent / "shared" / "data" / "coco128"
NANO_ONNX = REPO.parent / "shared" / "weights" / "yolox_nano.onnx"
SIDES = ("ours", "peer")


# ---------------------------------------------------------------- generated splits
def make_split(source: Path, count: int, out: Path) -> Path:
    """``count`` images of ``source`` repeated through symlinks, as a COCO split in ``out`` (reused)."""
    spec = out / "data.yaml"
    if spec.is_file():
        return spec
    gt = json.loads((source / "annotations" / "instances.json").read_text())
    by_image: dict[int, list] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    images, anns = [], []
    for k in range(count):
        info = gt["images"][k % len(gt["images"])]
        name = f"{k:012}.jpg"
        link = out / "images" / name
        if not link.is_symlink():
            link.symlink_to((source / "images" / info["file_name"]).resolve())
        images.append({**info, "id": k + 1, "file_name": name})
        for ann in by_image.get(info["id"], []):
            anns.append({**ann, "id": len(anns) + 1, "image_id": k + 1})
    text = json.dumps({**gt, "images": images, "annotations": anns})
    (out / "annotations" / "instances.json").write_text(text)
    spec.write_text(
        "format: coco\ntrain: {images: images, annotations: annotations/instances.json}\n"
        "val: {images: images, annotations: annotations/instances.json}\n"
    )
    return spec


# ---------------------------------------------------------------- measurements (each in a fresh process)
def rss_mb(pid: int | None = None) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def uss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_full_info().uss / 2**20


def measure_start(side: str, root: Path, cache: Path | None) -> dict:
    import gc

    import torch  # noqa: F401  (both sides train with it: part of the baseline)

    from yoloxdet.data.checks import checked_dataset
    from yoloxdet.data.spec import load_dataset_spec

    if side == "peer":
        from yolox.data.datasets.coco import CocoDataset
    gc.collect()
    baseline = rss_mb()
    stages: dict[str, float] = {}
    start = time.perf_counter()
    if side == "peer":
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            dataset = CocoDataset(
                data_dir=str(root), json_file="instances.json", name="images", img_size=(640, 640)
            )
        boxes = sum(len(a[0]) for a in dataset.annotations)
    else:
        spec = load_dataset_spec(root / "data.yaml")
        dataset = checked_dataset(spec, "train", cache, progress=False, timings=stages)
        boxes = len(dataset.records.labels)
    seconds = time.perf_counter() - start
    gc.collect()
    return {
        "seconds": seconds,
        "memory_mb": rss_mb() - baseline,
        "images": len(dataset),
        "boxes": boxes,
        "stages": stages,
    }


AUG = {"mosaic_prob": 1.0, "mixup_prob": 1.0, "enable_mixup": True}


def train_batches(side: str, root: Path, cache: Path, *, batch: int, size: int, workers: int):
    """An iterator of training batches and the loader's worker pids (after the first batch)."""

    import torch
    from torch.utils.data import DataLoader

    from yoloxdet.data.augment import ResolvedAugment
    from yoloxdet.data.checks import checked_dataset
    from yoloxdet.data.loader import build_train_loader
    from yoloxdet.data.spec import load_dataset_spec

    aug = ResolvedAugment(**AUG)
    if side == "ours":
        dataset = checked_dataset(load_dataset_spec(root / "data.yaml"), "train", cache, progress=False)
        loader = build_train_loader(
            dataset, batch_size=batch, input_size=(size, size), augment=aug, seed=0, workers=workers
        )
        loader.set_epoch(0, mosaic=True)
        return iter(loader)
    from yolox.data.datasets.coco import CocoDataset

    with contextlib.redirect_stdout(io.StringIO()):
        base = CocoDataset(
            data_dir=str(root), json_file="instances.json", name="images", img_size=(size, size)
        )
    mosaic = peer_mosaic(base, (size, size), aug)
    return iter(
        DataLoader(
            mosaic,
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            persistent_workers=True,
            generator=torch.Generator().manual_seed(0),
        )
    )


def measure_worker_memory(side: str, root: Path, cache: Path, batches: int) -> dict:
    import psutil

    it = train_batches(side, root, cache, batch=2, size=320, workers=4)
    me = psutil.Process()

    def snapshot() -> dict:
        workers = me.children()
        return {
            "main_rss": rss_mb(),
            "main_uss": uss_mb(me.pid),
            "worker_rss": [rss_mb(w.pid) for w in workers],
            "worker_uss": [uss_mb(w.pid) for w in workers],
        }

    start = time.perf_counter()
    for _ in range(100):
        next(it)
    early = snapshot()
    for _ in range(batches - 100):
        next(it)
    return {"early": early, "late": snapshot(), "seconds": time.perf_counter() - start}


def measure_rate(side: str, root: Path, cache: Path, batches: int) -> dict:
    it = train_batches(side, root, cache, batch=8, size=640, workers=2)
    for _ in range(3):  # workers started, first batches out
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return {"samples_per_s": 8 * batches / (time.perf_counter() - start)}


def run_measure(kind: str, side: str, root: Path, cache: Path, extra: int = 0) -> dict:
    """One measurement in a fresh process (start times and memory are per process)."""
    cmd = [
        sys.executable,
        __file__,
        "--measure",
        kind,
        "--side",
        side,
        "--root",
        str(root),
        "--cache",
        str(cache),
        "--extra",
        str(extra),
    ]
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_val(root: Path, workers: int, work: Path) -> dict:
    out = work / f"val-{workers}.json"
    cmd = [
        sys.executable,
        "-m",
        "yoloxdet",
        "val",
        str(NANO_ONNX),
        "--model",
        "yolox-nano",
        "--data",
        str(root / "data.yaml"),
        "--split",
        "val",
        "--workers",
        str(workers),
        "-o",
        str(out),
        "--no-progress",
    ]
    start = time.perf_counter()
    subprocess.run(
        cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")}
    )
    report = json.loads(out.read_text())
    return {"wall_s": time.perf_counter() - start, "timing_s": report["timing_s"], "AP": report["AP"]}


# ---------------------------------------------------------------- driver
def split_root(count: int, work: Path, real: Path | None) -> Path:
    return real if real is not None else make_split(COCO128, count, work / f"coco-{count}").parent


def bench_starts(counts: list[int], work: Path, turns: int, real: Path | None) -> dict[int, dict]:
    """First, cached and peer starts of every size, interleaved: each turn runs every size, so the sizes
    share the machine's load and their ratio is growth, not noise."""
    starts = {n: {"ours_first": [], "ours_cached": [], "peer": []} for n in counts}
    for turn in range(turns):
        for count in counts:
            root, cache = split_root(count, work, real), work / f"cache-{count}"
            order = ["ours_first", "peer", "ours_cached"]  # a cached start needs a first start before it
            if turn % 2:
                order = ["peer", "ours_first", "ours_cached"]  # neither side always runs first
            for kind in order:
                if kind == "ours_first":
                    shutil.rmtree(cache, ignore_errors=True)
                result = run_measure("start", "peer" if kind == "peer" else "ours", root, cache)
                starts[count][kind].append(result)
                print(f"{count}: {kind} turn {turn}: {result}", flush=True)
    out = {}
    for count, by_kind in starts.items():
        first = by_kind["ours_first"]
        out[count] = {
            "images": first[0]["images"],
            "boxes": first[0]["boxes"],
            "peer_boxes": by_kind["peer"][0]["boxes"],
            "turns": turns,
            "starts": {
                kind: {
                    "seconds": statistics.median(r["seconds"] for r in runs),
                    "memory_mb": statistics.median(r["memory_mb"] for r in runs),
                }
                for kind, runs in by_kind.items()
            },
            "stages": {  # of our first start, medians per stage
                stage: statistics.median(r["stages"][stage] for r in first) for stage in first[0]["stages"]
            },
        }
    return out


def bench_loader(count: int, work: Path, turns: int, batches: int, real: Path | None) -> dict:
    """Worker memory over ``batches`` batches and training-loader samples/s, ours and the peer's."""
    root, cache = split_root(count, work, real), work / f"cache-{count}"
    memory = {side: run_measure("workers", side, root, cache, batches) for side in SIDES}
    print(f"{count}: worker memory {memory}", flush=True)
    rates: dict[str, list] = {side: [] for side in SIDES}
    for turn in range(turns):
        for side in SIDES if turn % 2 == 0 else SIDES[::-1]:
            rates[side].append(run_measure("rate", side, root, cache, 40)["samples_per_s"])
    print(f"{count}: loader samples/s {rates}", flush=True)
    return {"workers": memory, "rate": {side: statistics.median(v) for side, v in rates.items()}}


def growth(flat: dict, key: str) -> str:
    """late / early of the largest worker's figure, as a percentage change."""
    early, late = max(flat["early"][key]), max(flat["late"][key])
    return f"{max(flat['early'][key]):.0f} -> {late:.0f} ({(late / early - 1) * 100:+.1f}%)"


def scaling(small: float, large: float, factor: float) -> str:
    """How a figure grows when the images grow ``factor`` times."""
    if small <= 0:
        return "-"
    ratio = large / small / factor
    verdict = "linear" if 0.8 <= ratio <= 1.25 else "sublinear" if ratio < 0.8 else "superlinear"
    return f"{large / small:.1f}x | {verdict}"


def render(results: dict, val: dict | None, batches: int) -> str:
    sizes = sorted(results, key=int)
    if not sizes:
        return "\n".join(render_val(val)) if val else ""
    head = (
        "| | "
        + " | ".join(f"ours {int(s) // 1000}k | peer {int(s) // 1000}k | ours / peer" for s in sizes)
        + " |"
    )
    rule = "|---|" + "---:|" * (3 * len(sizes))
    rows = []

    def row(name: str, ours, peer, fmt: str = "{:.1f}") -> None:
        cells = []
        for s in sizes:
            o, p = ours(results[s]), peer(results[s])
            if o is None:
                cells += ["-", "-", "-"]
                continue
            cells += [fmt.format(o), fmt.format(p) if p is not None else "-", f"{o / p:.2f}" if p else "-"]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    table = (  # label, ours' figure, the peer's figure (the peer's init is both its first and cached start)
        (
            "first start, s (ours: read + check every image header + save index)",
            "ours_first",
            "seconds",
            "{:.1f}",
        ),
        ("cached start, s (ours: load the saved index)", "ours_cached", "seconds", "{:.2f}"),
        (
            "memory of the loaded index, MB above baseline (cached start / peer init)",
            "ours_cached",
            "memory_mb",
            "{:.0f}",
        ),
        ("memory after a first start, MB above baseline", "ours_first", "memory_mb", "{:.0f}"),
    )
    for label, kind, key, fmt in table:
        row(
            label,
            lambda r, kind=kind, key=key: r["starts"][kind][key],
            lambda r, key=key: r["starts"]["peer"][key],
            fmt,
        )
    row(
        "training loader, samples/s (2 workers, 640, mosaic + mixup)",
        lambda r: r["rate"]["ours"] if "rate" in r else None,
        lambda r: r["rate"]["peer"] if "rate" in r else None,
    )
    lines = [head, rule, *rows]
    with_workers = [s for s in sizes if "workers" in results[s]]
    if with_workers:
        lines += [
            "",
            f"Worker memory over {batches} batches (batch 2, 320x320, 4 workers): MB after 100 batches -> "
            f"after {batches}, of the largest worker (RSS counts the parent's pages a worker has touched; "
            "USS only its private pages, which is where copy-on-read shows):",
            "",
            "| split | side | main RSS | worker RSS | worker USS | run, s |",
            "|---|---|---|---|---|---:|",
        ]
        for s in with_workers:
            for side in SIDES:
                w = results[s]["workers"][side]
                main = f"{w['early']['main_rss']:.0f} -> {w['late']['main_rss']:.0f}"
                lines.append(
                    f"| {int(s) // 1000}k | {side} | {main} | {growth(w, 'worker_rss')} | "
                    f"{growth(w, 'worker_uss')} | {w['seconds']:.0f} |"
                )
    if len(sizes) > 1:
        lines += ["", *render_growth(results, sizes[0], sizes[-1])]
    if val:
        lines += ["", *render_val(val)]
    return "\n".join(lines)


def render_growth(results: dict, small: str, large: str) -> list[str]:
    """Each stage at the smallest and the largest size, how many times it grew, and whether that is linear."""
    a, b = results[small], results[large]
    factor = int(large) / int(small)
    same_run = a.get("run") == b.get("run")
    lines = [
        f"Growth from {int(small) // 1000}k to {int(large) // 1000}k images ({factor:.0f}x the images; "
        f"linear = {factor:.0f}x, within 0.8-1.25 of it). "
        + (
            "Both sizes were measured in the same run, turn by turn, so they shared the machine's load."
            if same_run
            else "The two sizes come from different runs (different loads): run both in one command."
        ),
        "",
        f"| stage (seconds unless stated) | {int(small) // 1000}k | {int(large) // 1000}k | growth | |",
        "|---|---:|---:|---:|---|",
    ]
    figures = [
        (f"ours, first start: {stage}", lambda r, st=stage: r["stages"].get(st)) for stage in b["stages"]
    ]
    figures += [
        ("ours, first start: total", lambda r: r["starts"]["ours_first"]["seconds"]),
        ("ours, cached start", lambda r: r["starts"]["ours_cached"]["seconds"]),
        ("peer, `CocoDataset` init", lambda r: r["starts"]["peer"]["seconds"]),
        ("ours, index memory (MB)", lambda r: r["starts"]["ours_cached"]["memory_mb"]),
        ("peer, dataset memory (MB)", lambda r: r["starts"]["peer"]["memory_mb"]),
    ]
    for name, get in figures:
        x, y = get(a), get(b)
        if x is None or y is None or max(x, y) < 0.01:  # a stage that did not run (or nothing to time)
            continue
        lines.append(f"| {name} | {x:.2f} | {y:.2f} | {scaling(x, y, factor)} |")
    return lines


def render_val(val: dict) -> list[str]:
    stages = val["pipelined"]["timing_s"]
    lines = [
        f"`yoloxdet val` of YOLOX-Nano (official ONNX, 416x416, batch 8, CPU, faster-coco-eval) on "
        f"{val['images']:,} images: wall seconds of the whole command and of its stages (read_images = time "
        "the model waited for decoded images; inference = letterbox + forward + NMS, batched):",
        "",
        "| images decoded | wall | " + " | ".join(stages) + " | ms / image |",
        "|---|---:|" + "---:|" * (len(stages) + 1),
    ]
    for name, key in (
        ("in 1 loader process, while the model runs", "pipelined"),
        ("in the main process (`--workers 0`)", "serial"),
    ):
        if key in val:
            t = val[key]
            lines.append(
                f"| {name} | {t['wall_s']:.1f} | "
                + " | ".join(f"{v:.1f}" for v in t["timing_s"].values())
                + f" | {1000 * t['wall_s'] / val['images']:.1f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=int,
        nargs="*",
        default=[20000, 120000],
        help="split sizes to generate and measure, interleaved in one run (none: val only)",
    )
    parser.add_argument("--turns", type=int, default=3, help="interleaved turns (medians are reported)")
    parser.add_argument("--batches", type=int, default=2000, help="batches of the worker-memory run")
    parser.add_argument(
        "--starts-only", action="store_true", help="only the start-up figures (no loader runs); print only"
    )
    parser.add_argument("--work", default="/tmp/yoloxdet-scale", help="generated splits, caches and results")
    parser.add_argument("--real", help="a real COCO split (DIR/images, DIR/annotations/instances.json)")
    parser.add_argument("--val", action="store_true", help="also time `yoloxdet val` (see --val-images)")
    parser.add_argument("--val-images", type=int, default=5000, help="images of the val split")
    parser.add_argument(
        "--val-serial", action="store_true", help="and once more with images decoded serially"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--extra", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        root, cache = Path(args.root), Path(args.cache)
        measure = {
            "start": lambda: measure_start(args.side, root, cache),
            "workers": lambda: measure_worker_memory(args.side, root, cache, args.extra),
            "rate": lambda: measure_rate(args.side, root, cache, args.extra),
        }[args.measure]
        print(json.dumps(measure()))
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store = work / "results.json"
    saved = json.loads(store.read_text()) if store.is_file() else {"sizes": {}, "val": None}
    real = Path(args.real) if args.real else None
    if real is not None and not (real / "data.yaml").is_file():
        sys.exit(f"{real}/data.yaml: write a COCO description")
    if args.images:
        start, run = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S")
        counts = sorted(args.images)
        for count, result in bench_starts(counts, work, args.turns, real).items():
            if not args.starts_only:
                result.update(bench_loader(count, work, args.turns, args.batches, real))
            result.update(run=run, bench_s=time.perf_counter() - start, load=os.getloadavg())
            saved["sizes"][str(result["images"])] = result
    if args.val:
        root = make_split(COCO128, args.val_images, work / f"coco-{args.val_images}").parent
        saved["val"] = {"images": args.val_images, "pipelined": run_val(root, 1, work)}
        if args.val_serial:
            saved["val"]["serial"] = run_val(root, 0, work)
        print(f"val: {saved['val']}", flush=True)
    sizes = {s: r for s, r in saved["sizes"].items() if not args.images or int(s) in args.images}
    text = render(sizes or saved["sizes"], saved["val"], args.batches)
    print(text)
    if args.starts_only:
        return  # a partial run: keep the stored results and the docs of the last full one
    store.write_text(json.dumps(saved, indent=1))
    if not args.no_write:
        write_section("scale", section(saved, text))


def section(saved: dict, table: str) -> str:
    by_size = sorted(saved["sizes"].items(), key=lambda item: int(item[0]))
    took = ", ".join(
        f"{int(s) // 1000}k: {r['turns']} turn(s), load average {r['load'][0]:.1f} at the end"
        for s, r in by_size
        if "load" in r
    )
    splits = ", ".join(f"{int(s):,} images / {r['boxes']:,} boxes" for s, r in by_size)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    intro = (
        f"Generated from coco128 through symlinks ({splits}); ours = `checked_dataset` (the start of "
        "`yoloxdet train`), peer = pixeltable-yolox 0.4.3 `CocoDataset` (official; it has no cache, so its "
        "init is compared with both our first and our cached start). Each figure in a fresh process; medians "
        f"of interleaved turns (every size in each turn). Machine: {machine}; {took}. Absolute times move "
        "with the machine's load; ratios are from the same turns."
    )
    reproduce = (
        "Reproduce: `.venv/bin/python benchmarks/bench_scale.py --images 20000 120000 --turns 3 --val` "
        "(results in /tmp/yoloxdet-scale/results.json; `--starts-only` for the start-up rows alone)."
    )
    return "\n".join(
        ["## Scale: COCO-size splits (`benchmarks/bench_scale.py`)", "", intro, "", table, "", reproduce]
    )


if __name__ == "__main__":
    main()
