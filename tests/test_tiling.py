"""Tiled detection on large images: boxes mapped back exactly, cut pieces dropped, large objects kept once,
memory bounded. The network is replaced by a square finder (white squares on black) so that every box is known
exactly; tiling, the Detector's letterbox and NMS are the real code."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yoloxdet.inference.api import Detector
from yoloxdet.inference.tiling import TileSpec, predict_tiled, tile_windows
from yoloxdet.weights import CheckpointInfo

TILE = 128


class SquareFinder:
    """A Backend: every white connected component of the input is one class-0 object with score 1."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        rows = []
        for image in images:
            white = (image.min(dim=0).values >= 255).numpy().astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(white, connectivity=4)
            found = [
                [x + w / 2, y + h / 2, w, h, 1.0, 1.0] for x, y, w, h, _ in stats[1:count].astype(np.float32)
            ]
            rows.append(torch.tensor(found, dtype=torch.float32).reshape(-1, 6))
        width = max(1, max(len(r) for r in rows))
        out = torch.zeros(len(rows), width, 6)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out


def square_detector(batch_size: int = 8, size: int = TILE) -> Detector:
    info = CheckpointInfo("square-finder", 1, ("square",), (size, size))
    return Detector(SquareFinder(), info, batch_size=batch_size)


def draw_squares(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    for x0, y0, x1, y1 in boxes:
        image[y0:y1, x0:x1] = 255
    return image


def sorted_boxes(xyxy: np.ndarray) -> np.ndarray:
    return xyxy[np.lexsort((xyxy[:, 1], xyxy[:, 0]))]


def test_windows_cover_the_image_with_the_overlap_and_full_size_tiles():
    spec = TileSpec(size=TILE, overlap=0.25)
    windows = tile_windows(300, 500, spec)
    covered = np.zeros((300, 500), bool)
    for x0, y0, x1, y1 in windows:
        assert (x1 - x0, y1 - y0) == (TILE, TILE)
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs = sorted({w[0] for w in windows})
    assert all(
        b - a <= spec.stride for a, b in itertools.pairwise(xs)
    )  # neighbours overlap by at least overlap_px
    assert xs[-1] + TILE == 500


def test_small_objects_anywhere_are_mapped_back_exactly_once():
    spec = TileSpec(
        size=TILE, overlap=0.25, full_pass=False
    )  # overlap 32 px: squares up to 32 px are whole somewhere
    height, width = 350, 530
    windows = tile_windows(height, width, spec)
    # squares centred on tile corners and edges (where cuts happen), plus random ones, kept apart from each
    # other
    corners = sorted({(x, y) for x0, y0, x1, y1 in windows for x in (x0, x1) for y in (y0, y1)})
    rng = np.random.default_rng(0)
    centres = [(x, y) for x, y in corners if 20 <= x <= width - 20 and 20 <= y <= height - 20]
    centres += [(int(x), int(y)) for x, y in rng.uniform([10, 10], [width - 10, height - 10], (40, 2))]
    boxes: list[tuple[int, int, int, int]] = []
    for cx, cy in centres:
        side = int(rng.integers(4, 28))
        box = (cx - side // 2, cy - side // 2, cx - side // 2 + side, cy - side // 2 + side)
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            continue
        if all(
            box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1] or b[3] + 2 < box[1] for b in boxes
        ):
            boxes.append(box)
    assert len(boxes) > 20
    dets = predict_tiled(square_detector(), draw_squares(height, width, boxes), spec)
    np.testing.assert_array_equal(sorted_boxes(dets.xyxy), sorted_boxes(np.array(boxes, np.float32)))
    assert dets.orig_shape == (height, width)


def test_an_object_larger_than_a_tile_comes_from_the_full_pass_once():
    height, width = 400, 600
    big, small = (150, 100, 450, 330), (20, 20, 40, 40)
    image = draw_squares(height, width, [big, small])
    with_full = predict_tiled(square_detector(), image, TileSpec(size=TILE, overlap=0.25))
    without = predict_tiled(square_detector(), image, TileSpec(size=TILE, overlap=0.25, full_pass=False))
    np.testing.assert_array_equal(
        without.xyxy, np.array([small], np.float32)
    )  # every piece of the big one is cut
    assert len(with_full) == 2
    found_big = with_full.xyxy[np.argmax(with_full.xyxy[:, 2] - with_full.xyxy[:, 0])]
    # the full pass sees the image shrunk to 128 px: its box is exact to the letterbox's scale
    np.testing.assert_allclose(found_big, big, atol=width / TILE)
    np.testing.assert_array_equal(with_full.xyxy[with_full.xyxy[:, 2] < 100], np.array([small], np.float32))


def test_a_tile_covering_the_image_is_the_untiled_prediction():
    image = draw_squares(100, 120, [(10, 10, 30, 40), (60, 50, 100, 90)])
    detector = square_detector()
    [plain] = detector.predict_arrays([image])
    tiled = predict_tiled(detector, image, TileSpec(size=TILE))
    np.testing.assert_array_equal(tiled.xyxy, plain.xyxy)
    np.testing.assert_array_equal(tiled.scores, plain.scores)


@pytest.mark.parametrize("bad", [{"size": 16}, {"overlap": 1.0}, {"overlap": -0.1}])
def test_bad_tile_settings_are_refused(bad):
    with pytest.raises(ValueError, match="tile"):
        TileSpec(**bad)


def test_memory_stays_bounded_on_a_10k_image(tmp_path: Path):
    """Peak RSS while tiling a 10,000 x 10,000 image grows by far less than the image itself (300 MB): tiles
    are views, run a couple at a time. Holding the tiles as copies would add about 1.8x the image."""
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_tiling import draw_squares, square_detector
        from yoloxdet.inference.tiling import TileSpec, predict_tiled

        side = 10_000
        boxes = [
            (x, y, x + 40, y + 40) for x in range(100, side - 100, 997) for y in range(100, side - 100, 991)
        ]
        image = draw_squares(side, side, boxes)
        detector = square_detector(batch_size=2, size=1024)
        # warm up allocators
        predict_tiled(detector, image[:2048, :2048], TileSpec(size=1024, full_pass=False))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        dets = predict_tiled(detector, image, TileSpec(size=1024, overlap=0.25))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"growth_mb": (after - before) / 1024, "found": len(dets), "expected": len(boxes),
                          "image_mb": image.nbytes / 2**20}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["found"] == result["expected"]
    assert result["growth_mb"] < 0.5 * result["image_mb"], result


# --- the real model through the commands -------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_predict_tile_maps_real_detections_back_onto_a_large_mosaic(coco128, nano_onnx, tmp_path):
    """Four coco128 photos side by side (832 x 832): the top-left tile is exactly the first photo, so the
    official Nano's confident boxes on that photo alone must come back from the tiled run at the same
    place."""
    from yoloxdet.cli import main

    names = ("000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg")
    photos = [cv2.resize(cv2.imread(str(coco128 / "images" / n)), (416, 416)) for n in names]
    mosaic = np.concatenate([np.concatenate(photos[:2], 1), np.concatenate(photos[2:], 1)], 0)
    cv2.imwrite(str(tmp_path / "first.png"), photos[0])
    cv2.imwrite(str(tmp_path / "mosaic.png"), mosaic)
    common = [
        "predict",
        str(nano_onnx),
        "--model",
        "yolox-nano",
        "--no-progress",
        "--no-save",
        "--conf",
        "0.3",
    ]
    assert main([*common, str(tmp_path / "first.png"), "-o", str(tmp_path / "single")]) == 0
    assert main([*common, str(tmp_path / "mosaic.png"), "--tile", "416", "-o", str(tmp_path / "tiled")]) == 0

    def boxes(folder: str) -> tuple[np.ndarray, np.ndarray]:
        [entry] = json.loads((tmp_path / folder / "detections.json").read_text())["images"]
        dets = entry["detections"]
        return np.array([d["box_xyxy"] for d in dets]).reshape(-1, 4), np.array([d["class_id"] for d in dets])

    single, single_cls = boxes("single")
    tiled, tiled_cls = boxes("tiled")
    inside = (single[:, 2] < 413) & (
        single[:, 3] < 413
    )  # boxes at the photo's right/bottom edge are cut there
    assert inside.sum() >= 2
    iou = _iou(single[inside], tiled) * (single_cls[inside][:, None] == tiled_cls[None, :])
    assert (iou.max(axis=1) >= 0.8).all(), iou.max(axis=1)
    assert (tiled[:, 2] <= 832).all() and (tiled[:, 3] <= 832).all() and len(tiled) > len(single)


def test_val_with_a_tile_covering_every_image_equals_untiled_val(coco128, nano_onnx, tmp_path):
    from yoloxdet.cli import main

    gt = json.loads((coco128 / "annotations" / "instances.json").read_text())
    keep = {info["id"] for info in gt["images"][:6]}
    gt["images"] = [i for i in gt["images"] if i["id"] in keep]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    (tmp_path / "subset.json").write_text(json.dumps(gt))
    common = [
        "val",
        str(nano_onnx),
        "--model",
        "yolox-nano",
        "--no-progress",
        "--images",
        str(coco128 / "images"),
        "--annotations",
        str(tmp_path / "subset.json"),
    ]
    assert main([*common, "-o", str(tmp_path / "plain.json")]) == 0
    assert main([*common, "--tile", "640", "-o", str(tmp_path / "tiled.json")]) == 0
    plain, tiled = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("plain", "tiled"))
    assert plain["AP"] > 0.05
    assert {k: v for k, v in tiled.items() if k != "timing_s"} == {
        k: v for k, v in plain.items() if k != "timing_s"
    }
