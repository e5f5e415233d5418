"""Augmentation properties: boxes stay inside, boxes move with their pixels, identities, parameter ranges."""

from __future__ import annotations

import numpy as np
import pytest

from yoloxdet.config import AugmentConfig
from yoloxdet.data.augment import (
    AffineParams,
    ResolvedAugment,
    affine_matrix,
    apply_affine,
    hflip,
    overhead_views,
    resolve_augment,
    rot90,
    sample_affine,
    train_transform,
    vflip,
)
from yoloxdet.data.datasets import resize_to_fit
from yoloxdet.data.mosaic import make_train_sample, mixup, mosaic

AUG = ResolvedAugment()


def random_tile(rng, max_side=300):
    h, w = int(rng.integers(20, max_side)), int(rng.integers(20, max_side))
    n = int(rng.integers(0, 6))
    xy = rng.uniform(0, 1, (n, 2)) * [w, h]
    wh = rng.uniform(1, 1, (n, 2)) * rng.uniform(2, 0.5 * min(w, h), (n, 1))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1).astype(np.float32)
    return np.full((h, w, 3), 60, np.uint8), boxes, rng.integers(0, 3, n)


def filled_region(image_shape, box):
    """A black image whose pixels inside integer ``box`` are white."""
    image = np.zeros(image_shape, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    image[y1:y2, x1:x2] = 255
    return image


def assert_box_covers(image, box, tol=1.0):
    """Every clearly bright pixel lies inside ``box`` (grown by ``tol``), and the box is not much larger."""
    ys, xs = np.nonzero(image[..., 0] > 200)
    assert len(xs), "the filled region vanished"
    assert xs.min() >= box[0] - tol and xs.max() + 1 <= box[2] + tol
    assert ys.min() >= box[1] - tol and ys.max() + 1 <= box[3] + tol


def test_boxes_stay_inside_after_mosaic_and_affine():
    rng = np.random.default_rng(0)
    hw = (96, 128)
    for _ in range(200):
        tiles = [random_tile(rng) for _ in range(4)]
        center = (int(rng.uniform(0.5, 1.5) * hw[1]), int(rng.uniform(0.5, 1.5) * hw[0]))
        canvas, boxes, labels = mosaic(tiles, center, hw)
        assert canvas.shape == (2 * hw[0], 2 * hw[1], 3) and len(boxes) == len(labels)
        assert (
            (boxes >= 0).all() and (boxes[:, 0::2] <= 2 * hw[1]).all() and (boxes[:, 1::2] <= 2 * hw[0]).all()
        )
        size_wh = (hw[1], hw[0])
        image, warped = apply_affine(canvas, boxes, affine_matrix(sample_affine(rng, AUG), size_wh), size_wh)
        assert image.shape == (hw[0], hw[1], 3)
        assert (warped >= 0).all() and (warped[:, 0::2] <= hw[1]).all() and (warped[:, 1::2] <= hw[0]).all()
        assert (warped[:, 2:] >= warped[:, :2]).all()


def test_identity_affine_and_double_flip_are_no_ops():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    boxes = np.array([[1, 2, 30, 20], [10, 5, 60, 40]], np.float32)
    identity = affine_matrix(AffineParams(0, 1, 0, 0, 0, 0), (60, 40))
    np.testing.assert_array_equal(identity, [[1, 0, 0], [0, 1, 0]])
    out, out_boxes = apply_affine(image, boxes, identity, (60, 40))
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_boxes, boxes)
    twice, twice_boxes = hflip(*hflip(image, boxes))
    np.testing.assert_array_equal(twice, image)
    np.testing.assert_array_equal(twice_boxes, boxes)
    once, once_boxes = hflip(image, boxes)
    np.testing.assert_array_equal(once, image[:, ::-1])
    np.testing.assert_array_equal(once_boxes[0], [30, 2, 59, 20])


def test_box_moves_with_its_pixels_under_vflip_and_quarter_turns():
    rng = np.random.default_rng(7)
    for _ in range(20):
        x1, y1 = rng.integers(0, 50), rng.integers(0, 30)
        box = np.array([[x1, y1, x1 + rng.integers(3, 30), y1 + rng.integers(3, 20)]], np.float32)
        image = filled_region((50, 80, 3), box[0])
        flipped, flipped_boxes = vflip(image, box)
        assert_box_covers(flipped, flipped_boxes[0], tol=0)
        for turns in range(4):
            turned, turned_boxes = rot90(image, box, turns)
            assert turned.shape[:2] == ((50, 80) if turns % 2 == 0 else (80, 50))
            assert_box_covers(turned, turned_boxes[0], tol=0)
            area = np.prod(turned_boxes[0, 2:] - turned_boxes[0, :2])
            assert area == np.prod(box[0, 2:] - box[0, :2])


def test_overhead_views_draw_nothing_when_off():
    image, boxes = np.zeros((10, 20, 3), np.uint8), np.array([[1, 2, 5, 6]], np.float32)
    rng, untouched = np.random.default_rng(0), np.random.default_rng(0)
    out, out_boxes = overhead_views(image, boxes, rng, 0.0, 0.0)
    assert out is image and out_boxes is boxes
    assert rng.random() == untouched.random()  # the official augmentation stream is unchanged
    _, always = overhead_views(image, boxes, np.random.default_rng(1), 1.0, 0.0)
    np.testing.assert_array_equal(always, [[1, 4, 5, 8]])


def test_box_moves_with_its_pixels_under_affine():
    rng = np.random.default_rng(2)
    size_wh = (160, 120)
    for _ in range(60):
        x1, y1 = rng.integers(20, 120), rng.integers(20, 90)
        box = np.array([[x1, y1, x1 + rng.integers(8, 40), y1 + rng.integers(8, 30)]], np.float32)
        params = sample_affine(rng, ResolvedAugment(mosaic_scale=(0.7, 1.3)))
        params = AffineParams(params.angle, params.scale, params.shear_x, params.shear_y, 0.0, 0.0)
        image, warped = apply_affine(
            filled_region((240, 320, 3), box[0]), box, affine_matrix(params, size_wh), size_wh
        )
        if not (image[..., 0] > 200).any():
            continue  # warped out of the window
        assert_box_covers(image, warped[0], tol=1.5)


def test_box_moves_with_its_pixels_in_mosaic_and_mixup():
    rng = np.random.default_rng(3)
    hw = (64, 80)
    for _ in range(40):
        tiles = []
        for _ in range(4):
            h, w = int(rng.integers(30, 100)), int(rng.integers(30, 100))
            box = np.array([[w // 4, h // 4, w // 4 + w // 3, h // 4 + h // 3]], np.float32)
            tiles.append((filled_region((h, w, 3), box[0]), box, np.array([0])))
        fitted = []
        for image, box, label in tiles:
            ratio = min(hw[0] / image.shape[0], hw[1] / image.shape[1])
            fitted.append((resize_to_fit(image, hw), box * np.float32(ratio), label))
        center = (int(rng.uniform(0.5, 1.5) * hw[1]), int(rng.uniform(0.5, 1.5) * hw[0]))
        canvas, boxes, _ = mosaic(fitted, center, hw)
        ys, xs = np.nonzero(canvas[..., 0] > 200)  # every filled pixel lies in some box, every box is filled
        inside = (
            (xs[:, None] >= boxes[:, 0] - 1)
            & (xs[:, None] + 1 <= boxes[:, 2] + 1)
            & (ys[:, None] >= boxes[:, 1] - 1)
            & (ys[:, None] + 1 <= boxes[:, 3] + 1)
        )
        assert inside.any(axis=1).all()
        for box in boxes:
            inner = canvas[int(box[1]) + 2 : int(box[3]) - 2, int(box[0]) + 2 : int(box[2]) - 2, 0]
            assert inner.size == 0 or inner.min() > 200
        base = (np.zeros((hw[0], hw[1], 3), np.uint8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        other_box = np.array([[10, 8, 40, 30]], np.float32)
        mixed, mixed_boxes, _ = mixup(
            base, (filled_region((hw[0], hw[1], 3), other_box[0]), other_box, np.array([1])), rng, (0.5, 1.5)
        )
        if (mixed_boxes[0, 2:] - mixed_boxes[0, :2]).min() > 2:
            assert_box_covers(mixed * 2, mixed_boxes[0], tol=1.5)  # blended at half intensity


@pytest.mark.parametrize(
    "field, low, high, draw",
    [
        ("angle", -10, 10, lambda p: p.angle),
        ("scale", 0.1, 2.0, lambda p: p.scale),
        ("shear", -2, 2, lambda p: p.shear_x),
        ("shear", -2, 2, lambda p: p.shear_y),
        ("translate", -0.1, 0.1, lambda p: p.translate_x),
        ("translate", -0.1, 0.1, lambda p: p.translate_y),
    ],
)
def test_affine_parameter_ranges_are_official(field, low, high, draw):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    values = np.array([draw(sample_affine(rng, AUG)) for _ in range(4000)])
    assert values.min() >= low and values.max() <= high
    assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low)
    assert stats.kstest(values, "uniform", args=(low, high - low)).pvalue > 1e-3


def test_affine_matrix_matches_its_definition():
    params = AffineParams(angle=30, scale=1.5, shear_x=2, shear_y=-1, translate_x=0.1, translate_y=-0.05)
    m = affine_matrix(params, (200, 100))
    a, b = 1.5 * np.cos(np.pi / 6), 1.5 * np.sin(np.pi / 6)
    tx, ty = np.tan(np.radians(2)), np.tan(np.radians(-1))
    np.testing.assert_allclose(m, [[a - ty * b, b + ty * a, 20], [-b + tx * a, a + tx * b, -5]], rtol=1e-12)


def test_resolve_augment_uses_model_defaults():
    from yoloxdet.models.zoo import get_spec

    for name, mosaic_prob, mixup_on, scale in [
        ("yolox-nano", 0.5, False, (0.5, 1.5)),
        ("yolox-tiny", 1.0, False, (0.5, 1.5)),
        ("yolox-s", 1.0, True, (0.1, 2.0)),
    ]:
        spec = get_spec(name)
        aug = resolve_augment(
            AugmentConfig(),
            mosaic_prob=spec.mosaic_prob,
            enable_mixup=spec.enable_mixup,
            mosaic_scale=spec.mosaic_scale,
        )
        assert (aug.mosaic_prob, aug.enable_mixup, aug.mosaic_scale) == (mosaic_prob, mixup_on, scale)
    forced = resolve_augment(
        AugmentConfig(mosaic_prob=0.2, enable_mixup=True, mosaic_scale=(1.0, 1.0)),
        mosaic_prob=0.5,
        enable_mixup=False,
        mosaic_scale=(0.5, 1.5),
    )
    assert (forced.mosaic_prob, forced.enable_mixup, forced.mosaic_scale) == (0.2, True, (1.0, 1.0))


def test_train_transform_keeps_every_box_and_drops_degenerate_ones():
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 900, (600, 2))
    boxes = np.concatenate([xy, xy + 20], axis=1).astype(np.float32)  # 600 boxes: official would keep 120
    boxes[:3, 2] = boxes[:3, 0] + 0.5  # degenerate after scaling
    image = np.zeros((1000, 1000, 3), np.uint8)
    out = train_transform(image, boxes, np.zeros(600, np.int64), (500, 500), rng, hsv_prob=1.0, flip_prob=0.5)
    assert out.image.shape == (500, 500, 3)
    assert len(out.boxes_cxcywh) == 597
    np.testing.assert_allclose(out.boxes_cxcywh[:, 2:], 10.0, rtol=1e-5)
    negative = train_transform(
        image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), (500, 500), rng, 1, 1
    )
    assert negative.boxes_cxcywh.shape == (0, 4) and negative.image.shape == (500, 500, 3)


def test_make_train_sample_no_aug_phase_is_letterbox_only():
    image = np.random.default_rng(6).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 50, 40]], np.float32)
    load = lambda i: (image, boxes, np.array([1]))  # noqa: E731
    aug = ResolvedAugment(hsv_prob=0.0, flip_prob=0.0)
    out = make_train_sample(0, load, 1, [0], (60, 90), aug, np.random.default_rng(0), mosaic_enabled=False)
    np.testing.assert_array_equal(out.image, image)
    np.testing.assert_allclose(out.boxes_cxcywh, [[30, 25, 40, 30]])


def test_hsv_gains_reach_the_image():
    """``augment.hsv_gains`` sets the colour jitter: larger gains move the pixels further from the
    zero-gain image (a lossy HSV round trip only), with the same draws, so the seeds pair up."""
    from yoloxdet.data.augment import hsv_offsets

    image = np.random.default_rng(7).integers(40, 216, (64, 64, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 50, 40]], np.float32)
    load = lambda i: (image, boxes, np.array([0]))  # noqa: E731

    def outputs(gains: tuple[int, int, int]) -> list[np.ndarray]:
        config = AugmentConfig(hsv_gains=gains, flip_prob=0.0)
        aug = resolve_augment(config, mosaic_prob=0.0, enable_mixup=False, mosaic_scale=(1, 1))
        assert aug.hsv_gains == gains
        return [
            make_train_sample(
                0, load, 1, [0], (64, 64), aug, np.random.default_rng(seed), mosaic_enabled=False
            ).image.astype(int)
            for seed in range(8)
        ]

    plain = outputs((0, 0, 0))
    moved = {
        g: sum(np.abs(a - b).mean() for a, b in zip(outputs(g), plain)) for g in [(5, 30, 30), (10, 60, 60)]
    }
    assert moved[(5, 30, 30)] > 1 and moved[(10, 60, 60)] > 1.5 * moved[(5, 30, 30)]
    assert hsv_offsets(np.random.default_rng(0), (0, 60, 0))[[0, 2]].tolist() == [0, 0]
