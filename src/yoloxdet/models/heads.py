"""Detection heads (reference §2.5). They return raw outputs; decoding and losses live elsewhere.

Output channel order per anchor point is (box 4, objectness 1, classes C), as in the official head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..structures import HeadOutputs
from .blocks import ConvBNAct, conv_block

PRIOR_PROB = 0.01  # initial sigmoid output of the objectness and class predictors


def prior_bias(prior_prob: float = PRIOR_PROB) -> float:
    """b = -log((1 - p) / p) makes every initial score p, so early objectness loss is not swamped by
    negatives."""
    return -math.log((1 - prior_prob) / prior_prob)


def _init_prior_bias(conv: nn.Conv2d, prior_prob: float = PRIOR_PROB) -> None:
    nn.init.constant_(conv.bias, prior_bias(prior_prob))


def _flatten_levels(per_level: list[Tensor]) -> Tensor:
    """[B, K, h, w] per level -> [B, A, K], levels concatenated 8 -> 16 -> 32, row-major within a level."""
    return torch.cat([t.flatten(2) for t in per_level], dim=2).permute(0, 2, 1)


def _pack(box: list[Tensor], obj: list[Tensor], cls: list[Tensor], strides: Sequence[int]) -> HeadOutputs:
    return HeadOutputs(
        box_raw=_flatten_levels(box),
        obj_logits=_flatten_levels(obj).squeeze(-1),
        cls_logits=_flatten_levels(cls),
        strides=tuple(strides),
        feature_sizes=tuple((int(t.shape[2]), int(t.shape[3])) for t in box),
    )


class DecoupledHead(nn.Module):
    """YOLOX's decoupled head: separate cls and reg branches per level; objectness comes from the reg
    branch."""

    def __init__(
        self,
        num_classes: int,
        in_channels: Sequence[int],
        strides: Sequence[int],
        hidden: int,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(strides)
        Conv = conv_block(depthwise)
        self.stems = nn.ModuleList(ConvBNAct(c, hidden, 1, act=act) for c in in_channels)
        self.cls_convs = nn.ModuleList(
            nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act))
            for _ in in_channels
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act))
            for _ in in_channels
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in in_channels)
        for conv in (*self.cls_preds, *self.obj_preds):
            _init_prior_bias(conv)

    def class_predictors(self) -> list[nn.Conv2d]:
        """The convs whose shape depends on the class count (re-initialised when fine-tuning)."""
        return list(self.cls_preds)

    def forward(self, features: Sequence[Tensor]) -> HeadOutputs:
        box, obj, cls = [], [], []
        for i, x in enumerate(features):
            x = self.stems[i](x)
            # cls branch first, as official: the ONNX importer pairs convs by the order they run
            cls.append(self.cls_preds[i](self.cls_convs[i](x)))
            reg_feat = self.reg_convs[i](x)
            box.append(self.reg_preds[i](reg_feat))
            obj.append(self.obj_preds[i](reg_feat))
        return _pack(box, obj, cls, self.strides)


class CoupledHead(nn.Module):
    """YOLOv3-style coupled head for ablations: one branch, one conv predicting (box, obj, cls) together."""

    def __init__(
        self,
        num_classes: int,
        in_channels: Sequence[int],
        strides: Sequence[int],
        hidden: int,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(strides)
        Conv = conv_block(depthwise)
        self.stems = nn.ModuleList(ConvBNAct(c, hidden, 1, act=act) for c in in_channels)
        self.convs = nn.ModuleList(
            nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act))
            for _ in in_channels
        )
        self.preds = nn.ModuleList(nn.Conv2d(hidden, 5 + num_classes, 1) for _ in in_channels)
        for conv in self.preds:
            # prior bias on the obj and cls channels only; box channels keep PyTorch's default init
            with torch.no_grad():
                conv.bias[4:].fill_(prior_bias())

    def class_predictors(self) -> list[nn.Conv2d]:
        return list(self.preds)

    def forward(self, features: Sequence[Tensor]) -> HeadOutputs:
        box, obj, cls = [], [], []
        for i, x in enumerate(features):
            out = self.preds[i](self.convs[i](self.stems[i](x)))
            box.append(out[:, :4])
            obj.append(out[:, 4:5])
            cls.append(out[:, 5:])
        return _pack(box, obj, cls, self.strides)
