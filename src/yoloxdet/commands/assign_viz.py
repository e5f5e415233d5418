"""``yoloxdet assign-viz``: see which anchor points each assigner makes positive for each GT.

Input is an image with boxes (``--image IMG --boxes "x1,y1,x2,y2,cls;..."``, original pixels) or a dataset
sample (``--data DATASET.yaml --index N``). The model is a checkpoint (``--weights``) or ``--model`` at its
(seeded) initialisation. Writes into ``-o``: ``<assigner>.png`` and ``<assigner>.json`` (every positive with
its GT, stride, cell, cost and IoU) per assigner, and ``sheet.png`` with all panels side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

HELP = (
    "draw the positive anchor points of each label assigner (one PNG each, a side-by-side sheet, cost JSON)"
)
DEFAULT_ASSIGNERS = "simota,simota-2021,ota,single,center3x3"
DEFAULT_MODEL = "yolox-nano"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image file (give its boxes with --boxes)")
    source.add_argument("--data", metavar="DATASET.yaml", help="dataset description; the sample is --index")
    parser.add_argument(
        "--boxes", help='GT boxes of --image in its pixels: "x1,y1,x2,y2,cls;x1,y1,x2,y2,cls"'
    )
    parser.add_argument("--index", type=int, default=0, help="sample index in the dataset split (default 0)")
    parser.add_argument("--split", default="train", help="dataset split (default train)")
    parser.add_argument("--weights", help="checkpoint to load (default: --model at initialisation)")
    parser.add_argument(
        "--model", help=f"zoo model; needed for official weights (default {DEFAULT_MODEL} at init)"
    )
    parser.add_argument(
        "--num-classes", type=int, help="classes of an initialised model (default: data's or 80)"
    )
    parser.add_argument("--size", type=int, help="square input size, a multiple of 32 (default: the model's)")
    parser.add_argument(
        "--assigners", default=DEFAULT_ASSIGNERS, help=f"comma-separated (default {DEFAULT_ASSIGNERS})"
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    parser.add_argument(
        "-o", "--output", default="runs/assign-viz", help="output folder (default runs/assign-viz)"
    )


def parse_boxes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``"x1,y1,x2,y2,cls;..."`` -> boxes_xyxy [N, 4] float32 and labels [N] int64; one-line errors."""
    import numpy as np

    boxes, labels = [], []
    for number, item in enumerate(filter(None, (part.strip() for part in text.split(";"))), start=1):
        fields = item.split(",")
        try:
            x1, y1, x2, y2 = (float(v) for v in fields[:4])
            label = int(fields[4])
        except (ValueError, IndexError):
            raise ValueError(f"--boxes: box {number} '{item}' is not x1,y1,x2,y2,cls") from None
        if len(fields) != 5 or not (x2 > x1 and y2 > y1) or label < 0:
            raise ValueError(f"--boxes: box {number} '{item}' needs x2 > x1, y2 > y1 and a class >= 0")
        boxes.append((x1, y1, x2, y2))
        labels.append(label)
    if not boxes:
        raise ValueError("--boxes: give at least one box as x1,y1,x2,y2,cls")
    return np.asarray(boxes, np.float32), np.asarray(labels, np.int64)


def _load_sample(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, int | None]:
    """(image BGR, boxes_xyxy, labels, description, number of classes of the data or None)."""
    if args.image:
        from ..io import read_image

        if not args.boxes:
            raise ValueError('--image needs --boxes "x1,y1,x2,y2,cls;..."')
        boxes, labels = parse_boxes(args.boxes)
        return read_image(args.image), boxes, labels, str(args.image), None
    from ..data.datasets import build_dataset
    from ..data.spec import load_dataset_spec

    dataset = build_dataset(load_dataset_spec(args.data), args.split)
    if not 0 <= args.index < len(dataset):
        raise ValueError(
            f"--index {args.index}: split '{args.split}' of {args.data} has {len(dataset)} images"
        )
    sample = dataset.load(args.index)
    if len(sample.boxes_xyxy) == 0:
        raise ValueError(f"{sample.path}: sample {args.index} has no boxes to assign")
    return sample.image, sample.boxes_xyxy, sample.labels, str(sample.path), dataset.num_classes


def _build_model(args: argparse.Namespace, data_classes: int | None, labels: np.ndarray) -> nn.Module:
    import torch

    if args.weights:
        from ..weights import load_model

        model, _ = load_model(args.weights, model_name=args.model)
    else:
        from ..models.zoo import create_model

        torch.manual_seed(args.seed)  # the zoo's init draws from the global generator
        model = create_model(args.model or DEFAULT_MODEL, num_classes=args.num_classes or data_classes or 80)
    if int(labels.max()) >= model.num_classes:
        raise ValueError(
            f"class {int(labels.max())} is out of range for a model with {model.num_classes} classes"
        )
    return model.eval()


def run(args: argparse.Namespace) -> int:
    import torch

    from ..assign import assign, available
    from ..data.transforms import letterbox, to_chw_float
    from ..experiments.viz_assign import draw_assignment, positive_rows, positives_per_gt, side_by_side
    from ..io import write_json_atomic
    from ..models.zoo import get_spec
    from ..ops.boxes import xyxy_to_cxcywh
    from ..structures import Targets

    names = [n.strip() for n in args.assigners.split(",") if n.strip()]
    unknown = [n for n in names if n not in available()]
    if unknown or not names:
        raise ValueError(
            f"--assigners: unknown {unknown or 'none given'}; available: {', '.join(available())}"
        )
    size = args.size or get_spec(args.model or DEFAULT_MODEL).input_size
    if size % 32:
        raise ValueError(f"--size {size} is not a multiple of 32")
    image, boxes, labels, description, data_classes = _load_sample(args)
    model = _build_model(args, data_classes, labels)

    canvas, ratio = letterbox(image, (size, size))
    boxes_in = torch.as_tensor(boxes * ratio, dtype=torch.float32)  # letterbox pads at the bottom-right only
    targets = Targets.from_list([xyxy_to_cxcywh(boxes_in)], [torch.as_tensor(labels)])
    with torch.no_grad():
        outputs = model(torch.from_numpy(to_chw_float(canvas))[None])

    output = Path(args.output)
    gt_json = [
        {"gt": g, "label": int(lab), "box_xyxy": [float(v) for v in box]}
        for g, (box, lab) in enumerate(zip(boxes_in.tolist(), labels))
    ]
    panels = []
    for name in names:
        rows = positive_rows(assign(name, outputs, targets), outputs)
        panel = draw_assignment(
            canvas, boxes_in.numpy(), rows, f"{name} - {Path(description).name}", outputs.strides
        )
        panels.append(panel)
        _write_png(output / f"{name}.png", panel)
        write_json_atomic(
            output / f"{name}.json",
            {
                "assigner": name,
                "image": description,
                "input_size": [size, size],
                "ratio": ratio,
                "model": args.weights or f"{args.model or DEFAULT_MODEL} (initialisation, seed {args.seed})",
                "gts": gt_json,
                "positives_per_gt": positives_per_gt(rows, len(gt_json)),
                "positives": rows,
            },
        )
        print(f"{name}: {len(rows)} positives, per GT {positives_per_gt(rows, len(gt_json))}")
    _write_png(output / "sheet.png", side_by_side(panels))
    print(f"wrote {len(names)} panels, their JSON and sheet.png to {output}")
    return 0


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    from ..io import write_bytes_atomic

    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: could not encode the PNG")
    write_bytes_atomic(path, png.tobytes())
