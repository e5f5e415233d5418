"""Our augmentation against pixeltable-yolox's ``MosaicDetection`` + ``TrainTransform`` (official numerics).

The peer draws from Python's ``random`` and numpy's global RNG; we record its draws and replay the same values
to our functions through a stand-in generator, then require identical pixels and boxes.
"""

from __future__ import annotations

import random
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from yoloxdet.data.augment import ResolvedAugment, affine_matrix, apply_hsv, sample_affine
from yoloxdet.data.datasets import build_dataset
from yoloxdet.data.loader import _TrainView
from yoloxdet.data.mosaic import make_train_sample, mosaic_tile
from yoloxdet.data.spec import parse_dataset_spec

peer_aug = pytest.importorskip(
    "yolox.data.data_augment", reason="pixeltable-yolox (test extra) not installed"
)
peer_mosaic = pytest.importorskip("yolox.data.datasets.mosaicdetection")

INPUT_HW = (320, 352)


class Recorder:
    """Wraps the peer's random sources and keeps their values per kind, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.random: deque = deque()
        self.uniform: deque = deque()
        self.integers: deque = deque()
        py_random, py_uniform, py_randint = random.random, random.uniform, random.randint
        np_uniform, np_randint = np.random.uniform, np.random.randint

        def rec(queue, fn):
            def wrapped(*args, **kwargs):
                value = fn(*args, **kwargs)
                queue.append(value)
                return value

            return wrapped

        monkeypatch.setattr(random, "random", rec(self.random, py_random))
        monkeypatch.setattr(random, "uniform", rec(self.uniform, py_uniform))
        monkeypatch.setattr(random, "randint", rec(self.integers, py_randint))
        monkeypatch.setattr(np.random, "uniform", rec(self.uniform, np_uniform))
        monkeypatch.setattr(np.random, "randint", rec(self.integers, np_randint))


class Replay:
    """A stand-in for ``numpy.random.Generator`` that returns the recorded peer values."""

    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder

    def random(self):
        return self.rec.random.popleft()

    def uniform(self, low=0.0, high=1.0, size=None):
        return self.rec.uniform.popleft()

    def integers(self, low, high=None, size=None):
        if size is None:
            return self.rec.integers.popleft()
        value = self.rec.integers.popleft()
        if isinstance(value, np.ndarray):
            return value
        return np.array([value] + [self.rec.integers.popleft() for _ in range(size - 1)])


class PeerDataset:
    """The peer's dataset protocol (pull_item, load_anno, input_dim) over our reader."""

    def __init__(self, dataset, input_hw):
        self.ds, self.input_dim = dataset, input_hw
        self._input_dim = input_hw

    def __len__(self):
        return len(self.ds)

    def pull_item(self, index):
        image, boxes, labels = self.ds.load_resized(index, self.input_dim)
        return image.copy(), np.hstack([boxes, labels[:, None]]).astype(np.float64), None, np.array([index])

    def load_anno(self, index):
        boxes, labels = self.ds.annotations(index)
        return np.hstack([boxes, labels[:, None]])


@pytest.fixture(scope="module")
def labelled(coco128: Path):
    spec = parse_dataset_spec(
        {"format": "coco", "train": {"images": "images", "annotations": "annotations/instances.json"}},
        base=coco128,
    )
    ds = build_dataset(spec, "train")
    ds.records = [r for r in ds.records if len(r.labels)][
        :24
    ]  # the peer redraws MixUp partners without boxes
    return ds


@pytest.mark.parametrize("mosaic_on", [True, False])
def test_samples_match_peer_exactly(labelled, monkeypatch, mosaic_on):
    aug = ResolvedAugment(mosaic_prob=1.0, mixup_prob=0.7, mosaic_scale=(0.1, 2.0))
    peer = peer_mosaic.MosaicDetection(
        PeerDataset(labelled, INPUT_HW),
        img_size=INPUT_HW,
        mosaic=mosaic_on,
        preproc=peer_aug.TrainTransform(max_labels=1000, flip_prob=aug.flip_prob, hsv_prob=aug.hsv_prob),
        degrees=aug.degrees,
        translate=aug.translate,
        mosaic_scale=aug.mosaic_scale,
        mixup_scale=aug.mixup_scale,
        shear=aug.shear,
        enable_mixup=True,
        mosaic_prob=aug.mosaic_prob,
        mixup_prob=aug.mixup_prob,
    )
    pool = np.arange(len(labelled))
    view = _TrainView(labelled, INPUT_HW, aug, seed=0)
    loads = []

    def load(i):
        loads.append(i)
        return labelled.load_resized(i, INPUT_HW)

    view.load = load  # count decodes: tiles nobody can see are skipped, with identical output
    compared_boxes = 0
    for trial in range(12):
        recorder = Recorder(monkeypatch)
        random.seed(trial)
        np.random.seed(trial)
        peer_image, peer_labels, _, _ = peer[trial]
        ours = make_train_sample(
            trial, load, len(labelled), pool, INPUT_HW, aug, Replay(recorder), mosaic_on, peek=view.peek
        )
        monkeypatch.undo()
        assert not (recorder.random or recorder.uniform or recorder.integers), "we drew less than the peer"
        np.testing.assert_array_equal(ours.image.transpose(2, 0, 1), peer_image)
        n = int((peer_labels[:, 3:] > 0).all(axis=1).sum())
        assert len(ours.labels) == n
        np.testing.assert_array_equal(ours.labels, peer_labels[:n, 0].astype(np.int64))
        np.testing.assert_allclose(ours.boxes_cxcywh, peer_labels[:n, 1:], rtol=0, atol=1e-3)
        compared_boxes += n
    assert compared_boxes > 0
    if mosaic_on:
        assert len(loads) < 12 * 5  # some mosaic tiles were outside the warped window and never decoded


def test_affine_matrix_matches_peer():
    aug = ResolvedAugment()
    for seed in range(20):
        random.seed(seed)
        peer_matrix, _ = peer_aug.get_affine_matrix(
            (640, 480), aug.degrees, aug.translate, aug.mosaic_scale, aug.shear
        )
        random.seed(seed)

        class PyRng:
            uniform = staticmethod(random.uniform)

        params = sample_affine(PyRng(), aug)
        np.testing.assert_allclose(affine_matrix(params, (640, 480)), peer_matrix, rtol=1e-12, atol=1e-9)


def test_hsv_matches_peer():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for seed in range(10):
        np.random.seed(seed)
        offsets = (np.random.uniform(-1, 1, 3) * [5, 30, 30] * np.random.randint(0, 2, 3)).astype(np.int16)
        np.random.seed(seed)
        peer = image.copy()
        peer_aug.augment_hsv(peer)
        np.testing.assert_array_equal(apply_hsv(image, offsets), peer)


def test_mosaic_tiles_match_peer():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = int(rng.integers(1, 500)), int(rng.integers(1, 500))
        center = (int(rng.integers(160, 480)), int(rng.integers(120, 360)))
        for k in range(4):
            peer = peer_mosaic.get_mosaic_coordinate(None, k, center[0], center[1], w, h, 480, 640)
            assert mosaic_tile(k, center, (w, h), (480, 640)) == peer


def test_coco_reader_matches_peer_annotations(coco128: Path):
    import contextlib
    import io

    coco_mod = pytest.importorskip("yolox.data.datasets.coco")
    with contextlib.redirect_stdout(io.StringIO()):
        peer = coco_mod.CocoDataset(
            data_dir=str(coco128), json_file="instances.json", name="images", img_size=INPUT_HW
        )
    spec = parse_dataset_spec(
        {"format": "coco", "train": {"images": "images", "annotations": "annotations/instances.json"}},
        base=coco128,
    )
    ours = build_dataset(spec, "train")
    assert ours.category_ids == tuple(peer.class_ids) and len(ours) == len(peer)
    compared = 0
    for i in range(len(ours)):
        labels, _, _, _ = peer.annotations[i]
        peer_labels = labels[
            (labels[:, 2] > labels[:, 0]) & (labels[:, 3] > labels[:, 1])
        ]  # we drop zero-size
        image, boxes, classes = ours.load_resized(i, INPUT_HW)
        assert ours.records[i].image_id == peer.ids[i]
        np.testing.assert_allclose(boxes, peer_labels[:, :4], rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(classes, peer_labels[:, 4].astype(np.int64))
        if i < 8:
            np.testing.assert_array_equal(image, peer.load_resized_img(i))
        compared += len(boxes)
    assert compared > 500
