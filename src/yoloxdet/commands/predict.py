"""``yoloxdet predict WEIGHTS SOURCE...``: detect objects in images, folders, globs and videos.

Writes annotated images/videos and ``detections.json`` into ``--output``. An unreadable input is reported on
one line and the others are still processed (exit status 1 when any input failed).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TTA_MODES, PredictConfig

if TYPE_CHECKING:
    import numpy as np

    from ..inference.api import Detector

HELP = (
    "detect objects in images, folders, glob patterns or videos; write annotated files and a detections JSON"
)


def add_detector_arguments(
    parser: argparse.ArgumentParser, conf: float, nms: float, batch: int = PredictConfig.batch
) -> None:
    """Arguments shared by ``predict`` and ``val``: the weights and how to run them (defaults from config)."""
    parser.add_argument(
        "weights", help="our .pt checkpoint, an official .pth/.onnx (with --model), or a zoo name"
    )
    parser.add_argument(
        "--model", help="zoo model name for official weights, e.g. yolox-s (see `yoloxdet models`)"
    )
    parser.add_argument(
        "--size", type=int, nargs="+", metavar="PX", help="input size: one value or H W (multiples of 32)"
    )
    parser.add_argument("--conf", type=float, default=conf, help=f"score threshold obj*cls (default {conf})")
    parser.add_argument("--nms", type=float, default=nms, help=f"NMS IoU threshold (default {nms})")
    parser.add_argument("--class-agnostic", action="store_true", help="one NMS over all classes")
    parser.add_argument("--batch", type=int, default=batch, help=f"images per forward pass (default {batch})")
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device, e.g. cpu or cuda:0 (default auto: CUDA when present, else cpu)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default="float32",
        help="network precision on CUDA: float32 (default), float16 or bfloat16",
    )
    parser.add_argument("--half", action="store_const", const="float16", dest="dtype", help="--dtype float16")
    parser.add_argument(
        "--no-fuse",
        action="store_true",
        help="run the PyTorch model as trained (by default BN is folded into the convs)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the PyTorch model (faster after ~15 s of compiling per input shape)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        metavar="PX",
        help="cut each image into overlapping PX-square tiles and merge their boxes (large images)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=PredictConfig.tile_overlap,
        help="with --tile: overlap between neighbouring tiles, a fraction of the tile "
        f"(default {PredictConfig.tile_overlap})",
    )
    parser.add_argument(
        "--no-full-pass",
        action="store_true",
        help="with --tile: skip the whole-image pass that finds objects larger than the overlap",
    )
    parser.add_argument(
        "--tta",
        choices=TTA_MODES,
        default=PredictConfig.tta,
        help="test-time augmentation: hflip also runs each image mirrored left-right, flips also upside down "
        f"and both; their boxes join before NMS (default {PredictConfig.tta})",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def input_size_from_args(size: list[int] | None) -> tuple[int, int] | None:
    """``--size``: one value (square) or two (H W); None when not given."""
    if not size:
        return None
    if len(size) > 2:
        raise ValueError("--size takes one value or two (H W)")
    return size[0], size[-1]


def detector_from_args(args: argparse.Namespace) -> Detector:
    import torch  # here, as the api import: `yoloxdet --help` starts without torch

    from ..inference.api import Detector
    from ..inference.tiling import TileSpec

    size = input_size_from_args(args.size)
    return Detector.from_checkpoint(
        args.weights,
        model_name=args.model,
        device=args.device,
        conf_threshold=args.conf,
        nms_iou_threshold=args.nms,
        class_agnostic=args.class_agnostic,
        input_size=size,
        batch_size=args.batch,
        fast=not args.no_fuse,
        compile=args.compile,
        dtype=None if args.dtype == "float32" else getattr(torch, args.dtype),
        tile=TileSpec(args.tile, args.overlap, full_pass=not args.no_full_pass) if args.tile else None,
        tta=args.tta,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_detector_arguments(parser, PredictConfig.conf_threshold, PredictConfig.nms_iou_threshold)
    parser.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="image, folder, glob pattern (quoted) or video"
    )
    parser.add_argument("-o", "--output", default="runs/predict", help="output folder (default runs/predict)")
    parser.add_argument(
        "--no-save", action="store_true", help="write only the JSON, no annotated images/videos"
    )


def run(args: argparse.Namespace) -> int:
    from ..io import expand_sources, is_video, write_json_atomic

    if "WORLD_SIZE" in os.environ:  # started by torchrun: shard the images over the processes, resumably
        from ..serve.batch_predict import predict_sharded, rank_device

        args.device = rank_device(args.device)
        return predict_sharded(detector_from_args(args), args.sources, Path(args.output), device=args.device,
                               save=not args.no_save, progress=not args.no_progress)  # fmt: skip
    files = expand_sources(args.sources)
    detector = detector_from_args(args)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "model": detector.info.model_name,
        "input_size": list(detector.input_size),
        "class_names": list(detector.names),
        "images": [],
        "videos": [],
        "errors": [],
    }
    images = [f for f in files if not is_video(f)]
    if images:
        report["images"] = _predict_images(detector, images, output, args, report["errors"])
    for video in (f for f in files if is_video(f)):
        try:
            report["videos"].append(_predict_video(detector, video, output, args))
        except ValueError as exc:
            _report_error(exc, report["errors"])
    write_json_atomic(output / "detections.json", report)
    count = sum(len(d["detections"]) for d in report["images"]) + sum(
        len(f["detections"]) for v in report["videos"] for f in v["frames"]
    )
    print(f"{count} detections in {len(images)} images and {len(report['videos'])} videos -> {output}")
    return 1 if report["errors"] else 0


def _report_error(exc: Exception, errors: list[str]) -> None:
    errors.append(str(exc))
    print(f"yoloxdet predict: error: {exc}", file=sys.stderr)


def _predict_images(
    detector: Detector, paths: list[Path], output: Path, args: argparse.Namespace, errors: list[str]
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from ..io import ImageReadError, read_image

    def readable() -> Iterator[tuple[np.ndarray, Path, None]]:
        for path in paths:
            try:
                yield read_image(path), path, None
            except ImageReadError as exc:
                _report_error(exc, errors)

    results = []
    used_names: set[str] = set()
    for dets in tqdm(
        detector.predict_stream(readable()), total=len(paths), unit="img", disable=args.no_progress
    ):
        results.append(dets.to_dict())
        if not args.no_save and dets.image_path is not None:
            dets.save(output / _unique_name(dets.image_path, used_names))
    return results


def _unique_name(path: Path, used: set[str]) -> str:
    """The file name, with the parent folder prefixed when two inputs share a name."""
    name = path.name
    if name in used:
        name = f"{path.parent.name}_{name}"
    used.add(name)
    return name


def _predict_video(detector: Detector, path: Path, output: Path, args: argparse.Namespace) -> dict[str, Any]:
    import cv2
    from tqdm import tqdm

    from ..io import ImageReadError

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImageReadError(f"{path}: not a readable video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def frames() -> Iterator[tuple[np.ndarray, Path, int]]:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame, path, index
            index += 1

    writer = None
    target = output / f"{path.stem}.mp4"
    temporary = output / f".{path.stem}.tmp.mp4"
    results = []
    try:
        for dets in tqdm(
            detector.predict_stream(frames()), total=total, desc=path.name, disable=args.no_progress
        ):
            results.append({k: v for k, v in dets.to_dict().items() if k != "image"})
            if args.no_save:
                continue
            if writer is None:
                height, width = dets.orig_shape
                writer = cv2.VideoWriter(
                    str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
                )
            writer.write(dets.draw())
        if writer is not None:
            writer.release()
            temporary.replace(target)  # atomic: a half-written video never takes the final name
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        temporary.unlink(missing_ok=True)
    if not results:
        raise ImageReadError(f"{path}: no frames could be read")
    return {"video": str(path), "fps": fps, "frames": results}
