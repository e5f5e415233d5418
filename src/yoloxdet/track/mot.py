"""MOTChallenge files: the comma-separated rows of ``gt.txt``
(``frame, id, left, top, width, height, conf, class, visibility``) and tracker results, ``seqinfo.ini``, and
the ``img1/`` frame folder.

Frames and ids are 1-based; boxes are (left, top, width, height) in pixels. Tracker result files carry
``conf,-1,-1,-1`` in the last four columns (the x, y, z of the 2D challenges), as the benchmark expects.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io import write_bytes_atomic


@dataclass(frozen=True)
class MotRows:
    """Rows of a MOTChallenge file as columns: frames, ids ``[N]`` int; tlwh ``[N, 4]``; conf, visibility
    ``[N]`` float; classes ``[N]`` int."""

    frames: np.ndarray
    ids: np.ndarray
    tlwh: np.ndarray
    conf: np.ndarray
    classes: np.ndarray
    visibility: np.ndarray

    @classmethod
    def from_rows(cls, rows: Iterable[Iterable[float]]) -> MotRows:
        array = np.asarray(list(rows), dtype=np.float64).reshape(-1, 9)
        return cls(
            array[:, 0].astype(np.int64),
            array[:, 1].astype(np.int64),
            array[:, 2:6],
            array[:, 6],
            array[:, 7].astype(np.int64),
            array[:, 8],
        )

    def __len__(self) -> int:
        return len(self.frames)

    def select(self, keep: np.ndarray) -> MotRows:
        return MotRows(
            self.frames[keep],
            self.ids[keep],
            self.tlwh[keep],
            self.conf[keep],
            self.classes[keep],
            self.visibility[keep],
        )

    def to_text(self, *, result: bool = False) -> str:
        """The file text; ``result``: a tracker result (``conf,-1,-1,-1`` tails) instead of ground truth."""
        lines = []
        for frame, track_id, (x, y, w, h), conf, cls, vis in zip(
            self.frames, self.ids, self.tlwh, self.conf, self.classes, self.visibility
        ):
            tail = f"{conf:.5g},-1,-1,-1" if result else f"{conf:g},{cls},{vis:.5g}"
            lines.append(f"{frame},{track_id},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{tail}")
        return "".join(line + "\n" for line in lines)


def read_mot(path: str | Path) -> MotRows:
    """Read a MOTChallenge txt (ground truth, or a result with 6-10 columns; missing columns get conf 1,
    class 1, visibility 1).

    Raises:
        ValueError: a line that is not comma-separated numbers with at least 6 columns (file and line named).
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.replace(" ", "").split(",")]
        except ValueError:
            raise ValueError(f"{path}:{number}: not comma-separated numbers: {line[:60]!r}") from None
        if len(values) < 6:
            raise ValueError(
                f"{path}:{number}: expected at least 6 columns (frame,id,left,top,w,h), got {len(values)}"
            )
        conf = values[6] if len(values) > 6 else 1.0
        if len(values) >= 9 and values[7] != -1:  # ground truth: class and visibility
            rows.append([*values[:7], values[7], values[8]])
        else:
            rows.append([*values[:6], conf, 1, 1.0])
    return MotRows.from_rows(rows)


def write_mot(path: str | Path, rows: MotRows, *, result: bool = True) -> Path:
    """Write rows atomically (a tracker result by default); returns the path."""
    write_bytes_atomic(path, rows.to_text(result=result).encode())
    return Path(path)


def seqinfo_text(name: str, *, length: int, width: int, height: int, frame_rate: float) -> str:
    return (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={frame_rate:g}\nseqLength={length}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n"
    )


def read_seqinfo(sequence_dir: str | Path) -> dict[str, str]:
    """The ``[Sequence]`` section of ``seqinfo.ini`` as a dict (keys lower-case)."""
    path = Path(sequence_dir) / "seqinfo.ini"
    parser = configparser.ConfigParser()
    if not parser.read(path):
        raise FileNotFoundError(f"{path}: no such file")
    if "Sequence" not in parser:
        raise ValueError(f"{path}: no [Sequence] section")
    return dict(parser["Sequence"])


def write_sequence(
    folder: str | Path, frames: np.ndarray, gt: MotRows, *, frame_rate: float, jpeg_quality: int = 92
) -> Path:
    """A MOTChallenge sequence folder: ``img1/000001.jpg ...``, ``gt/gt.txt`` and ``seqinfo.ini``."""
    folder = Path(folder)
    length, height, width = frames.shape[:3]
    for index, frame in enumerate(frames, start=1):
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise ValueError(f"frame {index}: cannot encode as JPEG")
        write_bytes_atomic(folder / "img1" / f"{index:06d}.jpg", encoded.tobytes())
    write_mot(folder / "gt" / "gt.txt", gt, result=False)
    info = seqinfo_text(folder.name, length=length, width=width, height=height, frame_rate=frame_rate)
    write_bytes_atomic(folder / "seqinfo.ini", info.encode())
    return folder
