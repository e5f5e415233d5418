"""``yoloxdet show-aug DATASET``: a PNG grid of augmented training samples with their boxes."""

from __future__ import annotations

import argparse
import math

HELP = "write a PNG grid of augmented training samples (mosaic, affine, mixup, HSV, flip) with their boxes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset description YAML")
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default="yolox-s", help="model whose augmentation defaults apply")
    parser.add_argument("--size", type=int, default=None, help="input size (default: the model's)")
    parser.add_argument("--num", type=int, default=16, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=0)
    parser.add_argument("--no-aug", action="store_true", help="the no-aug phase: no mosaic or mixup")
    parser.add_argument("--out", default="augment.png", help="output PNG")


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..config import AugmentConfig
    from ..data.augment import resolve_augment
    from ..data.datasets import build_dataset
    from ..data.loader import build_train_loader
    from ..data.spec import load_dataset_spec
    from ..io import write_bytes_atomic
    from ..models.zoo import get_spec
    from ..viz import draw_detections

    if args.num < 1:
        raise ValueError("--num must be at least 1")
    model = get_spec(args.model)
    size = args.size or model.input_size
    dataset = build_dataset(load_dataset_spec(args.dataset), args.split)
    augment = resolve_augment(
        AugmentConfig(),
        mosaic_prob=model.mosaic_prob,
        enable_mixup=model.enable_mixup,
        mosaic_scale=model.mosaic_scale,
    )
    loader = build_train_loader(
        dataset, batch_size=args.num, input_size=(size, size), augment=augment, seed=args.seed, workers=0
    )
    loader.set_epoch(args.epoch, mosaic=not args.no_aug)
    images, targets = next(iter(loader))
    tiles = []
    for b in range(len(images)):
        image = np.ascontiguousarray(images[b].permute(1, 2, 0).numpy().astype(np.uint8))
        boxes = targets.boxes_cxcywh[b][targets.mask[b]].numpy()
        xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
        labels = targets.labels[b][targets.mask[b]].numpy()
        tiles.append(draw_detections(image, xyxy, np.ones(len(labels)), labels, dataset.names))
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((rows * size, cols * size, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * size : (r + 1) * size, c * size : (c + 1) * size] = tile
    ok, png = cv2.imencode(".png", grid)
    if not ok:
        raise ValueError(f"{args.out}: could not encode the PNG")
    write_bytes_atomic(args.out, png.tobytes())
    print(f"{len(tiles)} augmented samples written to {args.out}")
    return 0
