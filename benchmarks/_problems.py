"""Random label-assignment problems shared by the benchmarks (``bench_assign.py``, ``gpu_check.py``): head
outputs with random logits and random ground-truth boxes, seeded."""

from __future__ import annotations

import torch

from yoloxdet.structures import HeadOutputs, Targets

STRIDES = (8, 16, 32)


def random_assignment_problem(
    batch: int, size: int, gts: int, classes: int, seed: int = 0
) -> tuple[HeadOutputs, Targets]:
    """Head outputs of a ``size`` input with random logits and ``gts`` random boxes (2-250 px) per image."""
    gen = torch.Generator().manual_seed(seed)
    sizes = tuple((size // s, size // s) for s in STRIDES)
    anchors = sum(h * w for h, w in sizes)
    box_raw = torch.randn(batch, anchors, 4, generator=gen) * 0.7 + torch.tensor([0.0, 0.0, 1.0, 1.0])
    outputs = HeadOutputs(
        box_raw,
        torch.randn(batch, anchors, generator=gen) * 2 - 1,
        torch.randn(batch, anchors, classes, generator=gen) * 2 - 2,
        STRIDES,
        sizes,
    )
    centres = torch.rand(batch, gts, 2, generator=gen) * size
    wh = torch.exp(torch.rand(batch, gts, 2, generator=gen) * 5.5) + 1
    labels = torch.randint(0, classes, (batch, gts), generator=gen)
    return outputs, Targets(torch.cat([centres, wh], -1), labels, torch.ones(batch, gts, dtype=torch.bool))
