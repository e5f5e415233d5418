"""``yoloxdet bench`` and the timing helpers behind it."""

from __future__ import annotations

import time

import pytest

from yoloxdet.bench.perf import BenchReport, median, time_interleaved
from yoloxdet.cli import main


def test_report_arithmetic_is_hand_checkable():
    report = BenchReport(
        "m", 640, batch=4, threads=2, parameters=1_000_000, gflops_per_image=10.0, peak_gflops=200.0
    )
    row = report.add("eager", [0.5, 0.1, 0.2])  # median 0.2 s per batch of 4
    assert row.ms_per_image == pytest.approx(50.0)
    assert row.images_per_s == pytest.approx(20.0)
    assert row.achieved_gflops == pytest.approx(200.0)  # 10 GFLOPs x 20 images/s
    assert row.peak_fraction == pytest.approx(1.0)
    assert row.times_bound == pytest.approx(1.0)
    assert report.model_mb == pytest.approx(4e6 / 2**20)
    assert median([3, 1, 2, 10]) == 2.5


def test_time_interleaved_alternates_the_order_every_round():
    calls = []
    times = time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        warmup=1,
        iters=4,
        sync=lambda: calls.append("|"),
    )
    assert [c for c in calls if c != "|"] == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert calls.count("|") == 16  # before and after each timed call
    assert {name: len(t) for name, t in times.items()} == {"a": 4, "b": 4}


def test_time_interleaved_bursts_drop_the_first_call_of_each_turn():
    calls = []
    slow_first = {"a": True, "b": True}

    def make(name):
        def fn():
            calls.append(name)
            if slow_first[name]:  # the call after another function's turn: made slow, must not be counted
                time.sleep(0.05)
            slow_first[name] = False
            slow_first["b" if name == "a" else "a"] = True

        return fn

    times = time_interleaved({"a": make("a"), "b": make("b")}, warmup=0, iters=2, burst=3)
    assert calls == ["a"] * 3 + ["b"] * 6 + ["a"] * 3
    assert {name: len(t) for name, t in times.items()} == {"a": 4, "b": 4}
    assert max(max(t) for t in times.values()) < 0.05


def test_bench_prints_every_backend_and_the_matmul_peak(capsys, nano_onnx):
    code = main(
        [
            "bench",
            "yolox-nano",
            "--size",
            "416",
            "--threads",
            "1",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--backends",
            "eager,fused,onnx",
            "--onnx",
            str(nano_onnx),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "matmul peak" in out and "GFLOPs/image" in out and "0.91 M params" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"eager", "fused", "onnx"}
    for cells in rows.values():
        ms_per_image, images_per_s = float(cells[1]), float(cells[2])
        assert ms_per_image > 0 and images_per_s == pytest.approx(1000 / ms_per_image, rel=0.02)


def test_bench_rejects_unknown_backends_and_bad_sizes(capsys):
    assert main(["bench", "yolox-nano", "--backends", "eager,tensorrt"]) == 2
    assert "tensorrt" in capsys.readouterr().err
    assert main(["bench", "yolox-nano", "--size", "100", "--backends", "eager"]) == 2
    assert "multiple of 32" in capsys.readouterr().err


def test_bench_model_times_the_matmul_yardstick_among_the_models(monkeypatch):
    from torch import nn

    from yoloxdet.bench import perf
    from yoloxdet.bench.perf import MATMUL, bench_model, matmul_probe

    class Tiny(nn.Module):  # no backends of ours are asked for: only the FLOP count runs it
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    seen = []
    report = bench_model(
        Tiny(),
        model_name="tiny",
        input_size=32,
        backends=(),
        iters=3,
        warmup=0,
        others={"probe": lambda images: seen.append(images.shape)},
    )
    assert [r.backend for r in report.rows] == ["probe"] and len(seen) == 3  # the matmul is not a row

    # with the clock replaced, the peak must be the matmul's GFLOPs over the median of its own turns
    rotations = []

    def fake_clock(fns, **kwargs):
        rotations.append(list(fns))
        return {name: [0.5, 0.1, 0.2] if name == MATMUL else [1.0] for name in fns}

    monkeypatch.setattr(perf, "time_interleaved", fake_clock)
    report = bench_model(
        Tiny(), model_name="tiny", input_size=32, backends=(), iters=3, others={"probe": print}
    )
    assert rotations == [["probe", MATMUL]]
    assert report.peak_gflops == pytest.approx(matmul_probe()[1] / 0.2)
    with pytest.raises(ValueError, match="yardstick"):
        bench_model(Tiny(), model_name="tiny", input_size=32, backends=(), iters=1, others={MATMUL: print})
