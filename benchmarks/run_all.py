"""Run every benchmark in turn (`make bench`); each script writes its own section of docs/benchmarks.md.

Run on a quiet machine: the numbers are ratios against pixeltable-yolox measured in the same run, but a busy
machine still adds noise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_inference.py",
    "bench_compile_modes.py",
    "bench_train_step.py",
    "bench_assign.py",
    "bench_ota.py",
    "bench_data.py",
    "bench_ema.py",
)


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n== {script}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script)]).returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
