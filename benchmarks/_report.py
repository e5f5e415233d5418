"""Replace one marked section of docs/benchmarks.md atomically, keeping every other section.

A section is delimited by ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``. Each benchmark script owns one
name, so scripts run independently never overwrite each other's results.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

HEADER = (
    "# Benchmarks\n\nEach section is written by the script named in it; re-run that script to refresh it.\n"
)


def write_section(name: str, markdown: str, path: str | os.PathLike[str] = "docs/benchmarks.md") -> Path:
    """Write ``markdown`` between the markers of section ``name`` in ``path`` (appended if absent); return the
    path."""
    target = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = target.read_text(encoding="utf-8") if target.exists() else HEADER
    head, found_start, rest = text.partition(start)
    if found_start:
        _, found_end, tail = rest.partition(end)
        if not found_end:
            raise ValueError(f"{target}: section {name!r} has a start marker but no end marker")
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
