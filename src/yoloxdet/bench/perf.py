"""Inference timing: per-backend latency and throughput, and the machine's matmul peak to judge them against.

A model's *compute bound* is its GFLOPs divided by the matmul GFLOP/s measured on the same machine in the same
run (a 1024x1024 float32 matmul timed in turns with the models, median): the time it would take if every FLOP
ran at dense-matmul speed. ``x bound`` = measured time / compute bound.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from ..export import ExportMetadata, export_onnx, read_onnx_metadata
from ..inference.api import TorchBackend
from ..inference.backends import OnnxBackend
from ..models.fuse import fuse_model, optimize_for_inference
from ..models.zoo import count_gflops, count_parameters

logger = logging.getLogger(__name__)

BACKENDS = ("eager", "fused", "compiled", "onnx")
MATMUL = "matmul"  # the yardstick's entry among the timed runners


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    warmup: int = 2,
    iters: int = 10,
    sync: Callable[[], None] | None = None,
    burst: int = 1,
) -> dict[str, list[float]]:
    """Seconds of each timed call of each function over ``iters`` rounds. The functions take turns (the order
    reversed every round), so that load from elsewhere on a shared machine falls on all of them alike.
    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read.

    With ``burst`` > 1 each turn is ``burst`` calls in a row and the first is not counted: it pays for the
    caches the previous function filled with its own weights, which a model called again and again does
    not."""
    sync = sync or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    uncounted = 1 if burst > 1 else 0
    for round_ in range(iters):
        for name in names if round_ % 2 == 0 else reversed(names):
            for call in range(burst):
                sync()
                start = time.perf_counter()
                fns[name]()
                sync()
                if call >= uncounted:
                    times[name].append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def matmul_probe(size: int = 1024, seed: int = 0) -> tuple[Callable[[], object], float]:
    """A float32 ``size``x``size`` matmul to time, and its GFLOPs per call: the yardstick of the compute
    bound."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    return (lambda: torch.mm(a, b, out=out)), 2 * size**3 / 1e9


@dataclass(frozen=True)
class BenchRow:
    backend: str
    seconds_per_batch: float  # median
    batch: int
    gflops_per_image: float
    peak_gflops: float

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds_per_batch / self.batch

    @property
    def images_per_s(self) -> float:
        return self.batch / self.seconds_per_batch

    @property
    def achieved_gflops(self) -> float:
        return self.gflops_per_image * self.images_per_s

    @property
    def peak_fraction(self) -> float:
        return self.achieved_gflops / self.peak_gflops

    @property
    def times_bound(self) -> float:
        """Measured time as a multiple of the compute bound (1.0 = matmul speed)."""
        return 1 / self.peak_fraction


@dataclass
class BenchReport:
    model_name: str
    input_size: int
    batch: int
    threads: int
    parameters: int
    gflops_per_image: float
    peak_gflops: float
    rows: list[BenchRow] = field(default_factory=list)

    @property
    def model_mb(self) -> float:
        return self.parameters * 4 / 2**20  # float32 weights

    def add(self, backend: str, seconds: Sequence[float]) -> BenchRow:
        row = BenchRow(backend, median(seconds), self.batch, self.gflops_per_image, self.peak_gflops)
        self.rows.append(row)
        return row

    def format(self) -> str:
        """A plain-text table for the terminal."""
        lines = [
            f"{self.model_name} @ {self.input_size}, batch {self.batch}, {self.threads} threads: "
            f"{self.parameters / 1e6:.2f} M params ({self.model_mb:.1f} MB float32), "
            f"{self.gflops_per_image:.2f} GFLOPs/image, matmul peak {self.peak_gflops:.1f} GFLOP/s",
            f"{'backend':<10} {'ms/image':>10} {'images/s':>10} {'GFLOP/s':>9} {'of peak':>8} {'x bound':>8}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.backend:<10} {r.ms_per_image:>10.2f} {r.images_per_s:>10.2f} {r.achieved_gflops:>9.1f} "
                f"{r.peak_fraction:>8.1%} {r.times_bound:>8.2f}"
            )
        return "\n".join(lines)


def _backend_runner(
    name: str, model: nn.Module, images: Tensor, threads: int, workdir: Path, onnx_path: Path | None
) -> Callable[[], Tensor]:
    if name in (
        "eager",
        "fused",
        "compiled",
    ):  # all three run under inference_mode and decode, as Detector does
        if name == "fused":
            model = optimize_for_inference(model)
            images = images.contiguous(memory_format=torch.channels_last)
        elif name == "compiled":
            model = optimize_for_inference(model, compile=True)
        backend = TorchBackend(model)
        return lambda: backend(images)
    if name == "onnx":
        size = (int(images.shape[2]), int(images.shape[3]))
        meta = ExportMetadata("bench", tuple(str(i) for i in range(model.num_classes)), size)
        if onnx_path is None:
            onnx_path = workdir / "model.onnx"
            # a fixed size exports several times faster; BN folded, as `yoloxdet export` does
            export_onnx(fuse_model(model), onnx_path, meta, dynamic_size=False)
        elif read_onnx_metadata(onnx_path) is None:
            meta = replace(
                meta, output_layout="raw"
            )  # an official export: raw layout, decoded by the backend
        else:
            meta = None  # type: ignore[assignment]  # use the file's own
        backend = OnnxBackend(onnx_path, meta, threads=threads)
        return lambda: backend(images)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")


def bench_model(
    model: nn.Module,
    *,
    model_name: str,
    input_size: int,
    batch: int = 1,
    threads: int = 1,
    backends: Sequence[str] = ("eager", "fused", "onnx"),
    warmup: int = 3,
    iters: int = 10,
    onnx_path: Path | None = None,
    others: Mapping[str, Callable[[Tensor], object]] | None = None,
    burst: int = 1,
) -> BenchReport:
    """Time ``model`` on each backend at a square ``input_size``; ``torch`` threads are set to ``threads``.

    ``others`` adds rows for outside runners (name -> function of the image batch), e.g. a peer
    implementation. All runners take turns, ``burst`` calls at a time (:func:`time_interleaved`)."""
    torch.set_num_threads(threads)
    model = model.eval()
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, input_size, input_size, generator=gen) * 255
    if MATMUL in (others or {}):
        raise ValueError(f"{MATMUL!r} is the name of the matmul yardstick; give the runner another name")
    matmul, matmul_gflop = matmul_probe()
    with tempfile.TemporaryDirectory(prefix="yoloxdet-bench-") as workdir:
        runners = {
            name: _backend_runner(name, model, images, threads, Path(workdir), onnx_path) for name in backends
        }
        for name, fn in (others or {}).items():
            runners[name] = lambda fn=fn: fn(images)
        # the matmul takes its turns with the models and is summarised by the same median, so that load from
        # elsewhere moves the peak and the model times alike instead of skewing their ratio
        runners[MATMUL] = matmul
        times = time_interleaved(runners, warmup=warmup, iters=iters, burst=burst)
    peak = matmul_gflop / median(times.pop(MATMUL))
    report = BenchReport(
        model_name, input_size, batch, threads, count_parameters(model), count_gflops(model, input_size), peak
    )
    for name, seconds in times.items():
        row = report.add(name, seconds)
        logger.info("%s: %.2f ms/image", name, row.ms_per_image)
    return report
