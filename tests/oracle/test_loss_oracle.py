"""Every loss term against the peer's ``get_losses`` (official numerics, reference §3.4), same raw tensors
in."""

from __future__ import annotations

import warnings

import pytest
import torch

from yoloxdet.assign import assign
from yoloxdet.loss import yolox_loss
from yoloxdet.models.zoo import create_model
from yoloxdet.ops.decode import decode_boxes
from yoloxdet.structures import HeadOutputs, Targets

from .peer import peer_model, randomize_
from .test_assign_oracle import peer_shifts, random_batch


def peer_labels(targets: Targets) -> torch.Tensor:
    """[B, G, 5] official label rows ``[cls, cx, cy, w, h]``, zero padding at the end."""
    rows = torch.cat([targets.labels[..., None].float(), targets.boxes_cxcywh], dim=-1)
    return rows * targets.mask[..., None]


def peer_losses(
    head: torch.nn.Module, outputs: HeadOutputs, targets: Targets, use_l1: bool
) -> dict[str, float]:
    x_shifts, y_shifts, strides = peer_shifts(outputs)
    decoded = torch.cat([decode_boxes(outputs), outputs.obj_logits[..., None], outputs.cls_logits], dim=-1)
    head.use_l1 = use_l1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        total, iou, obj, cls, l1, fg_ratio = head.get_losses(
            None,
            [x_shifts],
            [y_shifts],
            [strides],
            peer_labels(targets),
            decoded,
            [outputs.box_raw],
            torch.float32,
        )
    return {"total": total, "iou": iou, "obj": obj, "cls": cls, "l1": l1, "fg_per_gt": fg_ratio}


def assert_terms_close(ours: dict[str, torch.Tensor], theirs: dict[str, float]) -> None:
    for key, value in theirs.items():
        assert abs(float(ours[key]) - float(value)) < 1e-5 * max(1.0, abs(float(value))), key


@pytest.mark.parametrize("use_l1", [False, True])
@pytest.mark.parametrize(
    ("seed", "gts_per_image"),
    [(0, [0, 1, 3, 10, 50, 20, 5, 2]), (2, [7, 0, 0, 12]), (4, [0, 0])],  # the last: no positive at all
)
def test_loss_terms_match_peer(seed, gts_per_image, use_l1):
    head = peer_model("yolox-s").head
    outputs, targets = random_batch(seed, gts_per_image)
    assignment = assign("simota", outputs, targets)
    ours = yolox_loss(outputs, targets, assignment, use_l1=use_l1)
    assert_terms_close(ours, peer_losses(head, outputs, targets, use_l1))
    assert int(ours["num_fg"]) == int(assignment.fg_mask.sum())


def test_model_forward_losses_match_peer_training_forward():
    """End to end from images: our model's outputs through assign + loss vs the peer model's training
    forward."""
    peer = randomize_(peer_model("yolox-nano"), seed=3).train()
    ours = create_model("yolox-nano").train()
    ours.load_state_dict(peer.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 160, 192, generator=gen) * 255
    targets = Targets.from_list(
        [
            torch.tensor([[50.0, 60.0, 40.0, 30.0], [120.0, 80.0, 60.0, 90.0]]),
            torch.tensor([[96.0, 80.0, 8.0, 12.0]]),
        ],
        [torch.tensor([3, 7]), torch.tensor([1])],
    )
    for use_l1 in (False, True):
        peer.head.use_l1 = use_l1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            theirs = {
                k: float(torch.as_tensor(v).detach()) for k, v in peer(images, peer_labels(targets)).items()
            }
        outputs = ours(images)
        mine = yolox_loss(outputs, targets, assign("simota", outputs, targets), use_l1=use_l1)
        mine = {k: float(v.detach()) for k, v in mine.items()}
        assert theirs["iou_loss"] > 0 and (theirs["l1_loss"] > 0) == use_l1
        for key, peer_key in [
            ("total", "total_loss"),
            ("iou", "iou_loss"),
            ("obj", "conf_loss"),
            ("cls", "cls_loss"),
        ]:
            assert abs(mine[key] - theirs[peer_key]) < 1e-4 * max(1.0, theirs[peer_key]), key
        assert abs(mine["l1"] - theirs["l1_loss"]) < 1e-4 * max(1.0, theirs["l1_loss"])
        assert abs(mine["fg_per_gt"] - theirs["num_fg"]) < 1e-6
