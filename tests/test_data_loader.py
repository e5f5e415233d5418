"""Loaders: exact reproduction from (seed, epoch), explicit phases, negatives used, bad files skipped."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from test_data_helpers import ITEMS, write_yolo

from yoloxdet.data.augment import ResolvedAugment
from yoloxdet.data.datasets import build_dataset
from yoloxdet.data.loader import build_train_loader, build_val_loader
from yoloxdet.data.spec import load_dataset_spec
from yoloxdet.data.transforms import letterbox

HW = (64, 64)


@pytest.fixture
def dataset(tmp_path):
    return build_dataset(load_dataset_spec(write_yolo(tmp_path)), "train")


def epoch_batches(loader, epoch, mosaic=True):
    loader.set_epoch(epoch, mosaic)
    return [(images.clone(), targets) for images, targets in loader]


def test_same_seed_reproduces_exactly_whatever_the_workers(dataset):
    aug = ResolvedAugment()
    a = epoch_batches(
        build_train_loader(dataset, batch_size=2, input_size=HW, augment=aug, seed=3, workers=0), 1
    )
    b = epoch_batches(
        build_train_loader(dataset, batch_size=2, input_size=HW, augment=aug, seed=3, workers=2), 1
    )
    assert len(a) == len(b) == 2
    for (ia, ta), (ib, tb) in zip(a, b):
        assert ia.dtype == torch.float32 and ia.shape == (2, 3, *HW)
        assert torch.equal(ia, ib)
        assert torch.equal(ta.boxes_cxcywh, tb.boxes_cxcywh) and torch.equal(ta.mask, tb.mask)
    loader = build_train_loader(dataset, batch_size=2, input_size=HW, augment=aug, seed=3, workers=0)
    assert not torch.equal(epoch_batches(loader, 2)[0][0], a[0][0])  # another epoch, other draws


def test_no_aug_phase_is_plain_letterbox_and_negatives_are_used(dataset):
    aug = ResolvedAugment(hsv_prob=0.0, flip_prob=0.0)
    loader = build_train_loader(dataset, batch_size=4, input_size=HW, augment=aug, seed=0, workers=0)
    assert len(loader) == 1
    ((images, targets),) = epoch_batches(loader, 0, mosaic=False)
    seen = set()
    for b in range(4):
        # find which sample this is by matching the letterboxed pixels
        for i in range(len(dataset)):
            expected, ratio = letterbox(dataset.load(i).image, HW)
            if torch.equal(images[b], torch.from_numpy(expected).permute(2, 0, 1).float()):
                seen.add(i)
                n = int(targets.mask[b].sum())
                boxes = dataset.load(i).boxes_xyxy * ratio
                assert n == int((np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) > 1).sum())
    assert seen == set(range(len(ITEMS)))  # every image once, the negative one too


def test_distributed_shards_are_disjoint_and_complete(dataset):
    aug = ResolvedAugment()
    orders = []
    for rank in range(2):
        loader = build_train_loader(
            dataset,
            batch_size=1,
            input_size=HW,
            augment=aug,
            seed=0,
            workers=0,
            distributed=True,
            rank=rank,
            world_size=2,
        )
        loader.set_epoch(0, True)
        orders.append([key[0] for batch in loader.sampler for key in batch])
        assert len(loader) == 2
    assert sorted(orders[0] + orders[1]) == list(range(len(ITEMS)))


def test_bad_image_is_skipped_with_a_warning(dataset, caplog):
    dataset.records[1].path.write_bytes(b"not an image at all")
    loader = build_train_loader(
        dataset, batch_size=2, input_size=HW, augment=ResolvedAugment(), seed=0, workers=0
    )
    with caplog.at_level(logging.WARNING):
        batches = epoch_batches(loader, 0) + epoch_batches(loader, 1, mosaic=False)
    assert sum(len(images) for images, _ in batches) == 2 * len(ITEMS)
    assert any(str(dataset.records[1].path) in r.getMessage() for r in caplog.records)


def test_val_loader_metas(dataset):
    loader = build_val_loader(dataset, batch_size=3, input_size=HW, workers=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    metas = [m for _, m in batches for m in m]
    assert [m["image_id"] for m in metas] == [r.image_id for r in dataset.records]
    first = dataset.records[0]
    assert metas[0]["orig_hw"] == (first.height, first.width)
    assert metas[0]["ratio"] == pytest.approx(min(HW[0] / first.height, HW[1] / first.width))
    assert batches[0][0].shape == (3, 3, *HW) and batches[0][0].dtype == torch.float32


def test_val_loader_shards_whole_batches_across_ranks(dataset):
    loader = build_val_loader(dataset, batch_size=2, input_size=HW, workers=0)
    whole = [[m["image_id"] for m in metas] for _, metas in loader]
    shards = [
        [
            [m["image_id"] for m in metas]
            for _, metas in build_val_loader(
                dataset, batch_size=2, input_size=HW, workers=0, rank=r, world_size=2
            )
        ]
        for r in range(2)
    ]
    assert shards == [whole[0::2], whole[1::2]]  # each rank reads only its own batches


def test_train_loader_uint8_batches_match_float(dataset):
    def first(uint8):
        loader = build_train_loader(
            dataset, batch_size=2, input_size=HW, augment=ResolvedAugment(), seed=0, workers=0, uint8=uint8
        )
        return epoch_batches(loader, 0)[0][0]

    images = first(True)
    assert images.dtype == torch.uint8  # converted on the training device, 4x fewer bytes to copy
    assert torch.equal(images.float(), first(False))


def test_ram_and_disk_cache_give_the_same_samples(dataset, tmp_path):
    plain = [dataset.load_resized(i, HW)[0].copy() for i in range(len(dataset))]
    dataset.enable_cache("ram", HW, workers=1)
    assert all(np.array_equal(dataset.load_resized(i, HW)[0], plain[i]) for i in range(len(dataset)))
    dataset.enable_cache("disk", HW, cache_dir=tmp_path / "cache")
    for _ in range(2):  # written, then read back
        assert all(np.array_equal(dataset.load_resized(i, HW)[0], plain[i]) for i in range(len(dataset)))
    assert len(list((tmp_path / "cache").glob("*.npy"))) == len(dataset)


def test_phase_switch_reaches_persistent_workers(dataset):
    aug = ResolvedAugment()
    runs = []
    for workers in (0, 2):
        loader = build_train_loader(
            dataset, batch_size=4, input_size=HW, augment=aug, seed=1, workers=workers
        )
        runs.append(
            [epoch_batches(loader, 0, mosaic=True)[0][0], epoch_batches(loader, 1, mosaic=False)[0][0]]
        )
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
