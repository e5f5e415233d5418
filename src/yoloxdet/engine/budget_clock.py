"""The clocks a training time budget can be measured on (``train.budget_clock``).

``wall``: elapsed real time. ``cpu``: CPU seconds (user + system) of this process and all its descendants
(data-loader workers), live or finished. On a machine shared with other jobs the wall clock gives a run less
work the busier the machine is; the CPU clock gives every run the same amount of computation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from yoloxdet.config import check_choice


def process_tree_cpu_seconds(process: psutil.Process | None = None) -> float:
    """User + system CPU seconds of ``process`` (default: this one), its live descendants, and the finished
    children it has waited for (the kernel adds those to ``children_user``/``children_system``)."""
    process = process or psutil.Process()
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # ended between the listing and the read: counted once it is waited for
        total += child_times.user + child_times.system
    return total


class CpuClock:
    """Process-tree CPU seconds that never go backwards (a worker that ends between two reads is briefly
    uncounted until its parent waits for it)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._last = 0.0

    def __call__(self) -> float:
        self._last = max(self._last, process_tree_cpu_seconds(self._process))
        return self._last


def budget_clock(kind: str) -> Callable[[], float]:
    """A function returning seconds on the clock ``kind`` ("wall" or "cpu"); only differences are
    meaningful."""
    check_choice("train.budget_clock", kind)
    return time.monotonic if kind == "wall" else CpuClock()
