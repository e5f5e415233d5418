"""``yoloxdet import-weights``: an official ``.pth`` / ``.onnx`` (or a zoo name) -> our ``.pt`` checkpoint.

ONNX exports have BN folded away; ``--calibrate IMAGES`` re-estimates the BN statistics on a few images so the
checkpoint is ready for fine-tuning with train-mode BN (eval output stays the same).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

HELP = "convert official YOLOX weights (.pth, BN-folded .onnx, or a zoo name) into a yoloxdet checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", help="official .pth or .onnx file, our .pt, or a zoo name (downloaded once)"
    )
    parser.add_argument("--model", help="zoo model name, e.g. yolox-nano (needed for official files)")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    parser.add_argument(
        "--calibrate",
        metavar="IMAGES",
        help="folder or glob of images to re-estimate BatchNorm statistics on (for ONNX imports)",
    )
    parser.add_argument(
        "--calibrate-images", type=int, default=64, help="how many images to use (default 64)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="calibration batch size (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the image choice and random flips")


def calibration_batches(
    images: str, size_hw: tuple[int, int], count: int, batch_size: int, seed: int = 0
) -> Iterator:
    """Up to ``count`` images from a folder or glob, letterboxed to ``size_hw``, half of them flipped
    horizontally (seeded), as float BGR batches ``[B, 3, H, W]``."""
    import numpy as np
    import torch

    from ..data.transforms import letterbox, to_chw_float
    from ..io import IMAGE_SUFFIXES, expand_sources, read_image

    files = [p for p in expand_sources(images) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"{images}: no image files to calibrate on")
    rng = np.random.default_rng(seed)
    chosen = [files[i] for i in sorted(rng.permutation(len(files))[:count])]
    for start in range(0, len(chosen), batch_size):
        arrays = []
        for path in chosen[start : start + batch_size]:
            image = read_image(path)
            if rng.random() < 0.5:
                image = np.ascontiguousarray(image[:, ::-1])
            arrays.append(to_chw_float(letterbox(image, size_hw)[0]))
        yield torch.from_numpy(np.stack(arrays))


def run(args: argparse.Namespace) -> int:
    from ..weights import calibrate_batchnorm, load_model, save_checkpoint

    if args.calibrate_images < 1 or args.batch_size < 1:
        raise ValueError("--calibrate-images and --batch-size must be at least 1")
    model, info = load_model(args.source, model_name=args.model)
    extra = {"source": str(args.source), "bn_calibrated": False}
    if args.calibrate:
        batches = calibration_batches(
            args.calibrate, info.input_size, args.calibrate_images, args.batch_size, args.seed
        )
        calibrate_batchnorm(model, batches)
        extra["bn_calibrated"] = True
    elif Path(args.source).suffix.lower() == ".onnx":
        print(
            "note: BN is folded in ONNX imports; pass --calibrate IMAGES before fine-tuning with "
            "train-mode BN"
        )
    save_checkpoint(args.output, model, info, extra)
    print(
        f"wrote {args.output}: {info.model_name}, {info.num_classes} classes, input {info.input_size[0]}x"
        f"{info.input_size[1]}{', BN calibrated' if args.calibrate else ''}"
    )
    return 0
