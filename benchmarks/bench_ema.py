"""EMA update of YOLOX-S: the foreach update (``ModelEMA.update``) vs the per-tensor loop it replaced
(``ema.mul_(d).add_((1 - d) * model)`` for each of ~600 state_dict entries), interleaved turns, same process.

On a GPU the loop is ~1,200 kernel launches per step; on the CPU it is the Python and allocation overhead.
Also reports the largest difference between the two averages (float rounding only). Writes the ``ema`` section
of docs/benchmarks.md. Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_ema.py [--repeats 40] [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from yoloxdet.bench.perf import median, time_interleaved
from yoloxdet.engine.ema import ModelEMA, ema_decay
from yoloxdet.models.zoo import create_model

COMMAND = "OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_ema.py"


def per_tensor_update(ema: ModelEMA, model: torch.nn.Module) -> None:
    """The update as it was: one multiply and one add per floating-point entry."""
    with torch.no_grad():
        ema.updates += 1
        d = ema_decay(ema.updates, ema.decay, ema.ramp)
        current = model.state_dict()
        for key, value in ema.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_((1.0 - d) * current[key].detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = create_model("yolox-s", 80).to(device)
    loop, foreach = ModelEMA(model), ModelEMA(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    times = time_interleaved(
        {"loop": lambda: per_tensor_update(loop, model), "foreach": lambda: foreach.update(model)},
        warmup=3,
        iters=args.repeats,
        sync=sync,
    )
    t_loop, t_foreach = median(times["loop"]), median(times["foreach"])
    diff = max(
        float((a - b).abs().max())
        for a, b in zip(loop.module.state_dict().values(), foreach.module.state_dict().values())
        if a.dtype.is_floating_point
    )
    where = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    text = (
        f"## EMA update (YOLOX-S)\n\n| per-tensor loop ms | foreach ms | speed-up | max abs difference |\n"
        f"|---|---|---|---|\n| {t_loop * 1000:.1f} | {t_foreach * 1000:.1f} | "
        f"{t_loop / t_foreach:.2f}x | "
        f"{diff:.1e} |\n\nMedian of {args.repeats} interleaved updates after 3 warm-ups; {where}; torch "
        f"{torch.__version__}; {platform.machine()}. The two take turns, so load "
        f"from elsewhere falls on both alike. `{COMMAND} --repeats {args.repeats}`"
    )
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('ema', text)}")


if __name__ == "__main__":
    main()
