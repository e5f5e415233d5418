"""``benchmarks/gpu_check.py --cpu-dry-run``: the GPU acceptance script runs its CPU-runnable checks end
to end.

The compile and export checks are left out here (tens of seconds on a CPU; compile and export have their own
tests), as are the CLI run (``tests/test_trainer_cli.py``) and the GPU-only checks, which report "skip".
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_check


def test_cpu_dry_run_passes_and_writes_its_table(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    names = ["device", "assign", "train_steps", "detector", "torchrun", "pytest_slow"]
    assert gpu_check.main(["--cpu-dry-run", "--report", str(report), "--only", *names]) == 0
    text = report.read_text()
    assert "<!-- gpu:start -->" in text and "CPU dry run" in text
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| check")
    }
    assert rows == {
        "device": "pass",
        "assign": "pass",
        "train_steps": "pass",
        "detector": "pass",
        "torchrun": "skip",
        "pytest_slow": "skip",
    }
    assert "simota" in text and "sizes [" in text  # every assigner compared; the multiscale sizes moved
