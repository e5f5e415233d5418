"""Prediction over many files, sharded across the processes of ``torchrun`` and resumable.

``torchrun --nproc_per_node=N -m yoloxdet predict WEIGHTS SOURCE... -o OUT`` lands here. Rank 0 lists the
files that are not done yet and broadcasts the list; rank r takes every N-th of them. Each file's detections
are written atomically to ``OUT/results/<key>.json``: that file existing *is* "done", so a killed job re-run
skips exactly the finished files and redoes only those whose result was never written. Each rank keeps its own
status file (``OUT/manifest/rank-R.json``, rewritten atomically every few seconds and at the end: no two
processes write one file); rank 0 merges them after a barrier into ``OUT/manifest.json`` (every input with its
status) and ``OUT/detections.json`` (the same report as a single-process ``predict``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..engine.distributed import barrier, broadcast_object, init_from_env
from ..inference.api import Detector, resolve_device
from ..io import ImageReadError, expand_sources, is_video, read_image, write_json_atomic

logger = logging.getLogger(__name__)

MANIFEST_EVERY_S = 5.0  # how often a rank rewrites its status file while working


def rank_device(device: str | None) -> str:
    """The device of this torchrun process: ``cuda`` (or ``auto`` on a machine with CUDA) means its own GPU
    (``LOCAL_RANK``); ``auto`` without CUDA, or None, the CPU."""
    resolved = resolve_device(device or "cpu")
    if resolved.type == "cuda" and resolved.index is None:
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return str(resolved)


def result_key(path: Path) -> str:
    """A readable, collision-free name for ``path``'s outputs: the stem plus a hash of the absolute path."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    return f"{path.stem}-{digest}"


def result_file(output: Path, path: Path) -> Path:
    return output / "results" / f"{result_key(path)}.json"


def predict_sharded(
    detector: Detector,
    sources: Sequence[str],
    output: Path,
    *,
    device: str | None = None,
    save: bool = True,
    progress: bool = True,
) -> int:
    """Detect in every image of ``sources`` across the torchrun processes, skipping files already done.

    Args:
        device: the detector's device (``cuda:R`` selects nccl, anything else gloo).
    Returns:
        0, or 1 when some input failed (named in the manifest and on stderr).
    """
    info = init_from_env(torch.device(rank_device(device)))
    try:
        files = expand_sources(list(sources))
        images = [f for f in files if not is_video(f)]
        run_id = broadcast_object(f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        pending = broadcast_object([f for f in images if not result_file(output, f).exists()])
        mine = pending[info.rank :: info.world_size]
        logger.info(
            "rank %d: %d of %d images (%d already done)",
            info.rank,
            len(mine),
            len(images),
            len(images) - len(pending),
        )
        _predict_files(
            detector,
            mine,
            output,
            save=save,
            run_id=run_id,
            rank=info.rank,
            progress=progress and info.is_main,
        )
        barrier()
        failed = 0
        if info.is_main:
            failed = _merge(detector, files, output, info.world_size)
        return 1 if broadcast_object(failed) else 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _predict_files(
    detector: Detector, paths: list[Path], output: Path, *, save: bool, run_id: str, rank: int, progress: bool
) -> dict[str, dict[str, Any]]:
    """Run this rank's files in batches; write each result atomically and this rank's status file."""
    status_file = output / "manifest" / f"rank-{rank}.json"
    statuses: dict[str, dict[str, Any]] = {str(p): {"status": "pending"} for p in paths}
    written = time.monotonic()
    write_json_atomic(status_file, statuses)
    bar = tqdm(total=len(paths), unit="img", disable=not progress)
    for start in range(0, len(paths), detector.batch_size):
        chunk, arrays = [], []
        for path in paths[start : start + detector.batch_size]:
            try:
                arrays.append(read_image(path))
                chunk.append(path)
            except ImageReadError as exc:
                statuses[str(path)] = {"status": "error", "error": str(exc), "run": run_id, "rank": rank}
                logger.error("yoloxdet predict: error: %s", exc)
        for dets in detector.predict_arrays(arrays, chunk, keep_images=save):
            path = dets.image_path
            assert path is not None
            entry = dets.to_dict()
            if save:
                entry["annotated"] = str(
                    dets.save(output / "images" / f"{result_key(path)}{path.suffix or '.jpg'}")
                )
            write_json_atomic(result_file(output, path), {**entry, "run": run_id, "rank": rank})
            statuses[str(path)] = {"status": "done", "detections": len(dets), "run": run_id, "rank": rank}
        bar.update(len(paths[start : start + detector.batch_size]))
        if time.monotonic() - written > MANIFEST_EVERY_S:
            write_json_atomic(status_file, statuses)
            written = time.monotonic()
    bar.close()
    write_json_atomic(status_file, statuses)


def _merge(detector: Detector, files: list[Path], output: Path, world_size: int) -> int:
    """Rank 0: one manifest over every input and the combined detections report; returns the failure count."""
    reported: dict[str, dict[str, Any]] = {}
    for rank_file in sorted((output / "manifest").glob("rank-*.json")):
        for name, status in json.loads(rank_file.read_text()).items():
            if status["status"] != "pending":
                reported[name] = status
    manifest: dict[str, dict[str, Any]] = {}
    images: list[dict[str, Any]] = []
    errors: list[str] = []
    for path in files:
        name, result = str(path), result_file(output, path)
        if is_video(path):
            manifest[name] = {
                "status": "error",
                "error": "videos are not sharded: predict them without torchrun",
            }
        elif result.exists():
            entry = json.loads(result.read_text())
            images.append({k: v for k, v in entry.items() if k not in ("run", "rank")})
            manifest[name] = {
                "status": "done",
                "result": str(result.relative_to(output)),
                "run": entry["run"],
                "rank": entry["rank"],
                "detections": len(entry["detections"]),
            }
        else:
            manifest[name] = reported.get(name, {"status": "missing"})
        if manifest[name]["status"] != "done":
            errors.append(f"{name}: {manifest[name].get('error', manifest[name]['status'])}")
    write_json_atomic(output / "manifest.json", {"world_size": world_size, "files": manifest})
    report = {
        "model": detector.info.model_name,
        "input_size": list(detector.input_size),
        "class_names": list(detector.names),
        "images": images,
        "videos": [],
        "errors": errors,
    }
    write_json_atomic(output / "detections.json", report)
    done = sum(s["status"] == "done" for s in manifest.values())
    logger.info(
        "%d of %d files done, %d detections -> %s",
        done,
        len(files),
        sum(len(i["detections"]) for i in images),
        output,
    )
    return len(errors)
