"""Acceptance checks of the GPU path (issue 19): one run, one pass/fail table, the figures with it.

On a CUDA machine (about 10 minutes on one recent GPU) it checks, in order:

1. ``device``: device facts and the autocast dtype each ``train.amp`` mode resolves to.
2. ``assign``: every assigner on CUDA at B=16 and B=64 with 120 GT per image, under fp16 and bf16 autocast,
   against the CPU in fp32 (on the first 8 images of each batch): the share of anchors with the same
   assignment (pass: at least 99.9 %), peak memory.
3. ``train_steps``: 30 trainer steps of YOLOX-S 640 B=16 for amp fp16, bf16 and off, channels_last,
   accumulate 2, multiscale up to 800, uint8 batches converted on the device: finite losses, moving multiscale
   sizes, the GradScaler scale, median step time, peak memory, host syncs per step under
   ``torch.cuda.set_sync_debug_mode("warn")`` (pass: at most one per step from the trainer itself) and a
   5-step profiler summary (sync calls, share of the span the GPU was idle).
4. ``cli_resume``: ``yoloxdet train`` on generated shapes with ``device=cuda``, then ``--resume``.
5. ``torchrun``: with 2+ GPUs, 2 processes with ``sync_bn`` + ``freeze`` + ``accumulate=2`` + ``max_minutes``:
   no hang, one run folder, frozen BN statistics unchanged; then a resume of that checkpoint with one visible
   GPU.
6. ``detector``: CUDA Detector against the CPU (fp32, then fp16); ``compile``: batch 5 then 3 (no recompile).
7. ``export_devices``: ONNX and TorchScript exported on one device and run on the other.
8. ``pytest_slow``: ``pytest -m slow`` on the GPU (the longest part: ``--skip pytest_slow`` to leave it out).

``--cpu-dry-run`` runs every part that can run on the CPU, at small sizes, so the script itself is tested
(``tests/test_gpu_check.py``); GPU-only parts report "skip". A real run writes the ``gpu`` section of
docs/benchmarks.md (``--report`` writes elsewhere, ``--no-write`` nowhere). Checks are a list of named
functions (``CHECKS``); add one by appending ``Check("name", function)``. Usage::

    .venv/bin/python benchmarks/gpu_check.py [--only NAME ...] [--skip NAME ...] [--no-write]
    .venv/bin/python benchmarks/gpu_check.py --cpu-dry-run --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _problems import random_assignment_problem
from _report import write_section

from yoloxdet import assign as assigners
from yoloxdet.cli import main as cli_main
from yoloxdet.config import CHOICES, TrainConfig
from yoloxdet.data.synthetic import write_shapes_dataset
from yoloxdet.engine.checkpoint import load_training_checkpoint
from yoloxdet.engine.multiscale import multiscale_for
from yoloxdet.engine.optim import build_optimizer
from yoloxdet.engine.schedule import LRSchedule, Phase
from yoloxdet.engine.trainer import Trainer, amp_dtype, yolox_loss_fn
from yoloxdet.export import ExportMetadata, export_onnx, export_torchscript
from yoloxdet.inference.api import Detector, TorchBackend
from yoloxdet.inference.backends import OnnxBackend, TorchScriptBackend, default_providers
from yoloxdet.models.fuse import optimize_for_inference
from yoloxdet.models.zoo import create_model
from yoloxdet.structures import HeadOutputs, Targets
from yoloxdet.weights import CheckpointInfo

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ".venv/bin/python benchmarks/gpu_check.py"
SAME_ASSIGNMENT = 0.999  # low-precision autocast may flip near-ties in the cost; more than 0.1 % is a bug
SYNC_WARNING = "called a synchronizing CUDA operation"
REFERENCE_IMAGES = 8  # images of each batch the CPU assigns in fp32 for comparison (OTA is slow on a CPU)
CONF = 5e-5  # below the initial score prior (0.01 obj x 0.01 cls), so an untrained model detects something


class Skip(Exception):
    """The check cannot run here (no GPU, one GPU, a missing runtime); the reason is reported."""


@dataclass(frozen=True)
class Sizes:
    """Problem sizes: the issue's on a GPU, small ones in the CPU dry run."""

    model: str = "yolox-s"
    input: int = 640
    batch: int = 16
    steps: int = 30
    assign_batches: tuple[int, ...] = (16, 64)
    gts: int = 120
    classes: int = 80
    profile_steps: int = 5


DRY_SIZES = Sizes(
    model="yolox-nano", input=128, batch=2, steps=4, assign_batches=(2,), gts=12, classes=4, profile_steps=1
)


@dataclass
class Context:
    device: torch.device
    dry_run: bool
    sizes: Sizes
    workdir: Path


@dataclass
class Outcome:
    status: str  # "pass", "fail" or "skip"
    figures: str


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], tuple[bool, str]]  # (passed, figures); raises Skip when it cannot run here
    gpus: int = 0  # GPUs it needs beyond the dry run (0: runs on the CPU too)


@dataclass
class Tally:
    values: list[str] = field(default_factory=list)
    ok: bool = True

    def add(self, ok: bool, text: str) -> None:
        self.ok &= ok
        self.values.append(text if ok else f"**{text}**")

    def result(self) -> tuple[bool, str]:
        return self.ok, "; ".join(self.values)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> str:
    return (
        f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB" if device.type == "cuda" else "n/a (CPU)"
    )


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# ---------------------------------------------------------------- 1. device facts
def check_device(ctx: Context) -> tuple[bool, str]:
    tally = Tally()
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        tally.add(
            True,
            f"{props.name}, sm{props.major}{props.minor}, {props.total_memory / 2**30:.0f} GiB, "
            f"{torch.cuda.device_count()} GPU(s), CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}",
        )
    else:
        tally.add(True, f"CPU ({platform.machine()}), torch {torch.__version__}")
    resolved = {mode: amp_dtype(mode, ctx.device) for mode in CHOICES["train.amp"]}
    tally.add(
        resolved["off"] is None and resolved["fp32"] is None,
        "amp "
        + ", ".join(f"{m}→{str(d).replace('torch.', '') if d else 'fp32'}" for m, d in resolved.items()),
    )
    if ctx.device.type == "cuda":
        tally.add(
            resolved["fp16"] == torch.float16 and resolved["bf16"] == torch.bfloat16,
            "explicit modes honoured",
        )
    return tally.result()


# ---------------------------------------------------------------- 2. assigners under autocast
def _outputs_to(outputs: HeadOutputs, device: torch.device, dtype: torch.dtype) -> HeadOutputs:
    return outputs._replace(
        box_raw=outputs.box_raw.to(device, dtype),
        obj_logits=outputs.obj_logits.to(device, dtype),
        cls_logits=outputs.cls_logits.to(device, dtype),
    )


def check_assign(ctx: Context) -> tuple[bool, str]:
    tally = Tally()
    dtypes = (torch.float16, torch.bfloat16) if ctx.device.type == "cuda" else (torch.bfloat16,)
    for batch in ctx.sizes.assign_batches:
        outputs, targets = random_assignment_problem(batch, ctx.sizes.input, ctx.sizes.gts, ctx.sizes.classes)
        first = min(
            batch, REFERENCE_IMAGES
        )  # each image's assignment is its own: the CPU redoes a few of them
        head = outputs._replace(
            box_raw=outputs.box_raw[:first],
            obj_logits=outputs.obj_logits[:first],
            cls_logits=outputs.cls_logits[:first],
        )
        head_targets = Targets(targets.boxes_cxcywh[:first], targets.labels[:first], targets.mask[:first])
        for name in assigners.available():
            with torch.no_grad():
                reference = assigners.assign(name, head, head_targets)
            for dtype in dtypes:
                _reset_peak(ctx.device)
                # the head's outputs come out of autocast in low precision; the assigner runs under it too
                low = _outputs_to(outputs, ctx.device, dtype)
                with torch.no_grad(), _autocast(ctx.device, dtype):
                    got = assigners.assign(name, low, targets.to(ctx.device))
                _sync(ctx.device)
                fg, matched = got.fg_mask[:first].cpu(), got.matched_gt[:first].cpu()
                same = (fg == reference.fg_mask) & ((matched == reference.matched_gt) | ~reference.fg_mask)
                share = float(same.float().mean())
                label = str(dtype).replace("torch.", "")
                tally.add(
                    share >= SAME_ASSIGNMENT,
                    f"{name} B={batch} {label}: {share:.2%} same, peak {_peak_mib(ctx.device)}",
                )
    return tally.result()


# ---------------------------------------------------------------- 3. trainer steps per AMP mode
class RandomBatches:
    """uint8 batches of noisy images with bright boxes, as the loader yields them for a GPU run."""

    def __init__(self, batch: int, size: int, classes: int, count: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(count):
            images = (torch.rand(batch, 3, size, size, generator=gen) * 80).to(torch.uint8)
            wh = 16 + torch.rand(batch, 8, 2, generator=gen) * size / 3
            centres = wh / 2 + torch.rand(batch, 8, 2, generator=gen) * (size - wh)
            labels = torch.randint(0, classes, (batch, 8), generator=gen)
            targets = Targets(torch.cat([centres, wh], -1), labels, torch.ones(batch, 8, dtype=torch.bool))
            self.items.append((images.pin_memory() if torch.cuda.is_available() else images, targets))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Targets]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int, mosaic: bool) -> None: ...


def _trainer(ctx: Context, amp: str, batches: RandomBatches) -> Trainer:
    torch.manual_seed(0)
    model = create_model(ctx.sizes.model, ctx.sizes.classes).to(ctx.device)
    model = model.to(memory_format=torch.channels_last)
    config = TrainConfig(batch=ctx.sizes.batch * 2, accumulate=2, amp=amp, channels_last=True, ema=True)
    optimizer = build_optimizer(model, lr=0.0, momentum=0.9, weight_decay=5e-4)
    schedule = LRSchedule(0.01 / 64 * config.batch, 100, 300, 5, 15)
    # sizes 32 * (s/32 ± r): 480-800 at 640, redrawn every 2 steps (every step in the short dry run)
    units = 5 if ctx.sizes.input >= 640 else 1
    multiscale = multiscale_for(
        (ctx.sizes.input, ctx.sizes.input), units, None, interval=2 if ctx.sizes.steps > 10 else 1, seed=0
    )
    trainer = Trainer(
        model,
        batches,
        optimizer,
        config=config,
        schedule=schedule,
        loss_fn=yolox_loss_fn(),
        multiscale=multiscale,
    )
    trainer.log_interval = 10**9  # read once at the end, as a run reads once per logging interval
    return trainer


def _count_syncs(run: Callable[[], None]) -> Counter:
    """Host syncs by call site (file:line) while ``run`` runs, from the sync debug mode's warnings."""
    sites: Counter = Counter()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    for w in caught:
        if SYNC_WARNING in str(w.message):
            sites[f"{Path(w.filename).parent.name}/{Path(w.filename).name}:{w.lineno}"] += 1
    return sites


def _profile_summary(run: Callable[[], None], device: torch.device) -> str:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        run()
        _sync(device)
        span_us = (time.perf_counter() - start) * 1e6
    events = prof.key_averages()
    syncs = sum(e.count for e in events if "Synchronize" in e.key or e.key == "cudaMemcpy")
    if device.type != "cuda":
        return f"profiled {len(events)} op kinds, CPU only"
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_us = sum(
        e.self_device_time_total for e in kernels
    )  # kernels only: CPU ops repeat their kernels' time
    return f"sync/memcpy calls {syncs}, GPU idle {max(0.0, 1 - busy_us / span_us):.0%} of the span"


def _train_mode(ctx: Context, amp: str, tally: Tally) -> None:
    """``steps`` optimizer steps in one AMP mode: timed steps, then sync counting, then the profiled steps."""
    steps = ctx.sizes.steps
    batches = RandomBatches(ctx.sizes.batch, ctx.sizes.input, ctx.sizes.classes, count=2 * steps)
    trainer = _trainer(ctx, amp, batches)
    phase = Phase(mosaic=True, l1=False)
    groups = [batches.items[2 * k : 2 * k + 2] for k in range(steps)]
    timed, rest = groups[: steps - ctx.sizes.profile_steps], groups[steps - ctx.sizes.profile_steps :]
    sizes, times = set(), []
    start_scale = trainer.scaler.get_scale() if trainer.scaler.is_enabled() else None
    _reset_peak(ctx.device)
    for k, group in enumerate(timed):
        sizes.add(trainer.multiscale.size_at(trainer.state.iteration))
        _sync(ctx.device)
        t0 = time.perf_counter()
        trainer.train_step(group, phase)
        _sync(ctx.device)
        if k >= 2:  # the first steps pay cuDNN autotuning and allocator growth
            times.append(time.perf_counter() - t0)

    def run(groups: list) -> Callable[[], None]:
        return lambda: [trainer.train_step(group, phase) for group in groups]

    if ctx.device.type == "cuda":
        counted, rest = rest[: len(rest) // 2], rest[len(rest) // 2 :]
        sites = _count_syncs(run(counted))
        own = sum(n for site, n in sites.items() if site.startswith("engine/"))  # the trainer's own
        per_step = max(len(counted), 1)
        top = ", ".join(f"{site}×{n}" for site, n in sites.most_common(3))
        tally.add(
            own <= per_step,
            f"{amp} syncs/step {sum(sites.values()) / per_step:.1f} (trainer "
            f"{own / per_step:.1f}; top {top})",
        )
    profile = _profile_summary(run(rest), ctx.device)
    losses = trainer.read_losses()
    finite = (
        bool(losses)
        and all(math.isfinite(v) for v in losses.values())
        and trainer.state.nonfinite_streak == 0
    )
    scale = "" if start_scale is None else f", scale {start_scale:g}→{trainer.scaler.get_scale():g}"
    median = statistics.median(times) if times else float("nan")
    tally.add(finite, f"{amp}: loss {losses.get('total', float('nan')):.3f}{scale}")
    tally.add(len(sizes) > 1, f"sizes {sorted(h for h, _ in sizes)}")
    tally.add(True, f"step {median * 1000:.0f} ms, peak {_peak_mib(ctx.device)}, {profile}")


def check_train_steps(ctx: Context) -> tuple[bool, str]:
    tally = Tally()
    for amp in ("fp16", "bf16", "off") if ctx.device.type == "cuda" else ("off",):
        _train_mode(ctx, amp, tally)
    return tally.result()


# ---------------------------------------------------------------- 4. CLI train and resume
def _train_args(ctx: Context, data: Path, runs: Path, name: str) -> list[str]:
    size = 64 if ctx.dry_run else 160
    return [
        str(data),
        "model=yolox-nano",
        "epochs=1",
        f"input_size={size}",
        "batch=4",
        "workers=0",
        "multiscale_range=0",
        "no_aug_epochs=0",
        "warmup_epochs=1",
        "eval_interval=1",
        f"output_dir={runs}",
        f"train.name={name}",
        f"device={ctx.device.type}",
        "--no-progress",
    ]


def _shapes(ctx: Context) -> Path:
    data = ctx.workdir / "shapes" / "data.yaml"
    if not data.is_file():
        write_shapes_dataset(data.parent, train=8, val=4, size=64 if ctx.dry_run else 160)
    return data


def check_cli_resume(ctx: Context) -> tuple[bool, str]:
    tally = Tally()
    runs = ctx.workdir / "runs"
    code = cli_main(["train", *_train_args(ctx, _shapes(ctx), runs, "single")])
    first = load_training_checkpoint(runs / "single" / "last.pt")
    tally.add(
        code == 0 and first["state"]["epoch"] == 1, f"train exit {code}, epoch {first['state']['epoch']}"
    )
    tally.add("cuda" in first["rng"] or ctx.device.type != "cuda", f"rng saved: {sorted(first['rng'])}")
    code = cli_main(["train", "--resume", str(runs / "single" / "last.pt"), "epochs=2", "--no-progress"])
    resumed = load_training_checkpoint(runs / "single" / "last.pt")
    tally.add(
        code == 0 and resumed["state"]["epoch"] == 2, f"resume exit {code}, epoch {resumed['state']['epoch']}"
    )
    return tally.result()


# ---------------------------------------------------------------- 5. torchrun with 2 GPUs
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_torchrun(ctx: Context) -> tuple[bool, str]:
    if ctx.device.type != "cuda" or torch.cuda.device_count() < 2:
        raise Skip("needs 2+ GPUs")
    tally = Tally()
    runs = ctx.workdir / "ddp-runs"
    args = [
        *_train_args(ctx, _shapes(ctx), runs, "ddp"),
        "sync_bn=true",
        "freeze=[backbone.backbone]",
        "accumulate=2",
        "max_minutes=1",
        "epochs=3",
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "yoloxdet",
        "train",
        *args,
    ]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return False, "torchrun hung (no exit within 240 s)"
    tally.add(
        done.returncode == 0,
        f"torchrun exit {done.returncode}"
        + ("" if done.returncode == 0 else f": {done.stderr.strip().splitlines()[-1:]}"),
    )
    if done.returncode != 0:
        return tally.result()
    tally.add(
        sorted(p.name for p in runs.iterdir()) == ["ddp"],
        f"run folders {sorted(p.name for p in runs.iterdir())}",
    )
    payload = load_training_checkpoint(runs / "ddp" / "last.pt")
    torch.manual_seed(0)  # the session seeds the model with train.seed (0) before building it
    initial = create_model("yolox-nano", num_classes=2).state_dict()
    frozen = [k for k in initial if k.startswith("backbone.backbone") and "running_" in k]
    moved = [k for k in frozen if not torch.equal(payload["train_model"][k].cpu(), initial[k])]
    tally.add(
        bool(frozen) and not moved, f"frozen BN buffers unchanged: {len(frozen) - len(moved)}/{len(frozen)}"
    )
    tally.add(
        len(payload["rng"].get("ranks", [])) == 2, f"rng per rank: {len(payload['rng'].get('ranks', []))}"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}
    resume = [
        sys.executable,
        "-m",
        "yoloxdet",
        "train",
        "--resume",
        str(runs / "ddp" / "last.pt"),
        "epochs=4",
        "max_minutes=0",
        "--no-progress",
    ]
    done = subprocess.run(resume, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    tally.add(done.returncode == 0, f"resume on 1 visible GPU: exit {done.returncode}")
    return tally.result()


# ---------------------------------------------------------------- 6. Detector on the device, compile
def _random_model_info(ctx: Context) -> CheckpointInfo:
    """What the randomly initialised check model predicts: ``ctx.sizes.classes`` classes at the check size."""
    return CheckpointInfo(
        ctx.sizes.model,
        ctx.sizes.classes,
        tuple(f"c{i}" for i in range(ctx.sizes.classes)),
        (ctx.sizes.input, ctx.sizes.input),
    )


def check_detector(ctx: Context) -> tuple[bool, str]:
    """The network on the device (fp32, and fp16 on CUDA) against the CPU: decoded outputs and detections."""
    tally = Tally()
    torch.manual_seed(0)
    model = create_model(ctx.sizes.model, ctx.sizes.classes).eval()
    info = _random_model_info(ctx)
    images = torch.rand(5, 3, ctx.sizes.input, ctx.sizes.input) * 255
    frames = [(torch.rand(ctx.sizes.input, ctx.sizes.input + 32, 3) * 255).byte().numpy() for _ in range(3)]
    expected = TorchBackend(model)(images)
    reference = Detector(model, info, conf_threshold=CONF).predict(frames)
    model = model.to(ctx.device)
    # CUDA fp32 convolutions use TF32 by default (10-bit mantissa), hence the looser fp32 bound there
    for dtype, rtol in (
        ((None, 2e-2), (torch.float16, 5e-2)) if ctx.device.type == "cuda" else ((None, 1e-3),)
    ):
        backend = TorchBackend(model, dtype=dtype)
        got = backend(images).cpu()
        error = float(((got - expected).abs() / (expected.abs() + 1)).max())
        dets = Detector(backend, info, conf_threshold=CONF).predict(frames)
        counts = [len(d.scores) for d in dets], [len(d.scores) for d in reference]
        label = "fp32" if dtype is None else "fp16"
        tally.add(error <= rtol, f"{ctx.device.type} {label} vs CPU: rel err {error:.2g}")
        close = all(abs(a - b) <= 0.05 * b + 1 for a, b in zip(*counts))  # scores near the threshold may flip
        tally.add(close, f"detections {counts[0]} vs {counts[1]}")
    return tally.result()


def check_compile(ctx: Context) -> tuple[bool, str]:
    """A compiled Detector fed batch 5 then batch 3: the short batch is padded, so nothing recompiles."""
    torch.manual_seed(0)
    model = create_model(ctx.sizes.model, ctx.sizes.classes).eval()
    info = _random_model_info(ctx)
    torch._dynamo.reset()
    compiled = optimize_for_inference(model.to(ctx.device), compile=True)
    detector = Detector(TorchBackend(compiled, pad_batch=5), info, batch_size=5)
    frames = [np.full((ctx.sizes.input, ctx.sizes.input, 3), 114, np.uint8)] * 5
    t0 = time.perf_counter()
    detector.predict(frames)
    first_s = time.perf_counter() - t0
    compiles = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    t0 = time.perf_counter()
    detector.predict(frames[:3])
    second_s = time.perf_counter() - t0
    again = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    return (
        again == compiles,
        f"batch 5 {first_s:.1f} s (compiling), then batch 3 {second_s:.2f} s, graphs {compiles}→{again}",
    )


# ---------------------------------------------------------------- 7. exports across devices
def check_export_devices(ctx: Context) -> tuple[bool, str]:
    tally = Tally()
    other = torch.device("cpu")
    torch.manual_seed(0)
    model = create_model("yolox-nano", 2).eval()
    size = 64
    meta = ExportMetadata("yolox-nano", ("a", "b"), (size, size))
    images = torch.rand(2, 3, size, size) * 255
    expected = TorchBackend(model)(images)
    for made_on, run_on in ((ctx.device, other), (other, ctx.device)):
        path = export_torchscript(model.to(made_on), ctx.workdir / f"m-{made_on.type}.torchscript", meta)
        out = TorchScriptBackend(path, device=run_on)(images.to(run_on)).cpu()
        error = float((out - expected).abs().max())
        tally.add(error < 1e-2, f"TorchScript {made_on.type}→{run_on.type}: err {error:.2g}")
        if ctx.device.type == "cpu":
            break  # the same device both ways
    path = export_onnx(model.cpu(), ctx.workdir / "m.onnx", meta)
    providers = default_providers()
    out = OnnxBackend(path, providers=providers)(images.to(ctx.device)).cpu()
    error = float((out - expected).abs().max())
    note = (
        " (onnxruntime-gpu not installed)" if ctx.device.type == "cuda" and "CUDA" not in providers[0] else ""
    )
    tally.add(error < 1e-2, f"ONNX on {providers[0]}{note}: err {error:.2g}")
    return tally.result()


# ---------------------------------------------------------------- 8. the slow tests on the GPU
def check_pytest_slow(ctx: Context) -> tuple[bool, str]:
    if ctx.dry_run:
        raise Skip("the slow tests are the CPU suite's own; run here only on a GPU")
    done = subprocess.run(
        # one process (-n 0): the suite's one-worker-per-core default would share one GPU among 16 workers
        [sys.executable, "-m", "pytest", "-m", "slow", "-x", "-n", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return done.returncode == 0, last


def check_tensorrt_engines(ctx: Context) -> tuple[bool, str]:
    """The deployment issue's TensorRT check (``gpu_check_tensorrt.py``): fp16 and int8 engines of the
    official Nano, their coco128 AP against PyTorch fp32 (at most 1 AP lost) and their latency against PyTorch
    AMP."""
    if ctx.device.type != "cuda":
        raise Skip("TensorRT needs a CUDA device")
    from gpu_check_tensorrt import check_tensorrt  # beside this script; imports tensorrt only when run

    result = check_tensorrt()
    if "skipped" in result:
        raise Skip(result["skipped"])
    tally = Tally()
    for precision in ("fp16", "int8"):
        drop = 100 * (result["ap_pytorch_fp32"] - result[f"ap_tensorrt_{precision}"])
        tally.add(drop <= 1.0, f"{precision} AP drop {drop:.2f}")
    tally.add(True, ", ".join(f"{k} {v:.2f}" for k, v in result.items() if k.startswith("ms_per_image")))
    return tally.result()


CHECKS: list[Check] = [
    Check("device", check_device),
    Check("assign", check_assign),
    Check("train_steps", check_train_steps),
    Check("cli_resume", check_cli_resume),
    Check("torchrun", check_torchrun, gpus=2),
    Check("detector", check_detector),
    Check("compile", check_compile),
    Check("export_devices", check_export_devices),
    Check("tensorrt", check_tensorrt_engines, gpus=1),
    Check("pytest_slow", check_pytest_slow),
]


def run_checks(ctx: Context, names: list[str]) -> dict[str, Outcome]:
    outcomes = {}
    for check in CHECKS:
        if check.name not in names:
            continue
        start = time.perf_counter()
        try:
            passed, figures = check.run(ctx)
            outcome = Outcome("pass" if passed else "fail", figures)
        except Skip as reason:
            outcome = Outcome("skip", str(reason))
        except Exception as exc:  # one broken check must not hide the others' results
            traceback.print_exc()
            outcome = Outcome("fail", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        outcome.figures += f" ({time.perf_counter() - start:.0f} s)"
        outcomes[check.name] = outcome
        print(f"{check.name}: {outcome.status} — {outcome.figures}", flush=True)
    return outcomes


def table(outcomes: dict[str, Outcome]) -> str:
    rows = [f"| {name} | {o.status} | {o.figures.replace('|', '/')} |" for name, o in outcomes.items()]
    return "\n".join(["| check | result | figures |", "|---|---|---|", *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-dry-run", action="store_true", help="run the CPU-runnable parts at small sizes"
    )
    parser.add_argument("--only", nargs="+", choices=[c.name for c in CHECKS], help="run only these checks")
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=[c.name for c in CHECKS], help="leave these out"
    )
    parser.add_argument(
        "--report", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file to write"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or use --cpu-dry-run", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu_dry_run else "cuda")
    names = [c.name for c in CHECKS if (not args.only or c.name in args.only) and c.name not in args.skip]
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(device, args.cpu_dry_run, DRY_SIZES if args.cpu_dry_run else Sizes(), Path(tmp))
        start = time.perf_counter()
        outcomes = run_checks(ctx, names)
        total_s = time.perf_counter() - start
    text = table(outcomes)
    print(text)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU dry run (small sizes)"
    if not args.no_write:
        markdown = (
            f"## GPU acceptance ({where})\n\n{text}\n\n{len(outcomes)} checks in {total_s:.0f} s; torch "
            f"{torch.__version__}. `{COMMAND}{' --cpu-dry-run' if args.cpu_dry_run else ''}`"
        )
        print(f"wrote {write_section('gpu', markdown, args.report)}")
    return 1 if any(o.status == "fail" for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
