"""Building blocks of the YOLOX networks (reference §2.1).

Submodule names (``conv``, ``bn``, ``dconv``, ``pconv``, ``conv1`` ...) match the official checkpoints, so
official state dicts load without renaming. Every BatchNorm uses eps 1e-3 and momentum 0.03, as the released
weights assume.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def make_activation(name: str) -> nn.Module:
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "lrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown activation '{name}'; expected silu, relu or lrelu")


class ConvBNAct(nn.Module):
    """``act(bn(conv(x)))`` with 'same' padding; the official ``BaseConv``."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: str = "silu"
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise ``kernel``x``kernel`` conv followed by a pointwise 1x1, each with BN and activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, act: str = "silu") -> None:
        super().__init__()
        self.dconv = ConvBNAct(in_ch, in_ch, kernel, stride, groups=in_ch, act=act)
        self.pconv = ConvBNAct(in_ch, out_ch, 1, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        return self.pconv(self.dconv(x))


def conv_block(depthwise: bool) -> type[nn.Module]:
    """The 3x3 conv type of a network: DWConv for Nano, ConvBNAct otherwise."""
    return DWConv if depthwise else ConvBNAct


class Bottleneck(nn.Module):
    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_ch * expansion)
        self.conv1 = ConvBNAct(in_ch, hidden, 1, act=act)
        self.conv2 = conv_block(depthwise)(hidden, out_ch, 3, 1, act=act)
        self.use_add = shortcut and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """Cross-stage partial layer ("C3"): a bottleneck path and a skip path, concatenated then mixed."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        n: int = 1,
        shortcut: bool = True,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_ch * 0.5)
        self.conv1 = ConvBNAct(in_ch, hidden, 1, act=act)
        self.conv2 = ConvBNAct(in_ch, hidden, 1, act=act)
        self.conv3 = ConvBNAct(2 * hidden, out_ch, 1, act=act)
        self.m = nn.Sequential(
            *(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act=act) for _ in range(n))
        )

    def forward(self, x: Tensor) -> Tensor:
        # official order (conv1, conv2, then m): the ONNX importer pairs convs by the order they run
        main_path = self.conv1(x)
        skip_path = self.conv2(x)
        return self.conv3(torch.cat([self.m(main_path), skip_path], dim=1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: the input concatenated with max-pools of sizes 5, 9 and 13."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_sizes: Sequence[int] = (5, 9, 13), act: str = "silu"
    ) -> None:
        super().__init__()
        hidden = in_ch // 2
        self.conv1 = ConvBNAct(in_ch, hidden, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = ConvBNAct(hidden * (len(kernel_sizes) + 1), out_ch, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.m)], dim=1))


class Focus(nn.Module):
    """Space-to-depth then a conv. The slice order (TL, BL, TR, BR) is what the checkpoints expect."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, act: str = "silu") -> None:
        super().__init__()
        self.conv = ConvBNAct(in_ch * 4, out_ch, kernel, stride, act=act)

    def forward(self, x: Tensor) -> Tensor:
        top_left = x[..., ::2, ::2]
        bottom_left = x[..., 1::2, ::2]
        top_right = x[..., ::2, 1::2]
        bottom_right = x[..., 1::2, 1::2]
        return self.conv(torch.cat([top_left, bottom_left, top_right, bottom_right], dim=1))


class ResLayer(nn.Module):
    """Darknet residual block: 1x1 halving, 3x3 restoring, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layer1 = ConvBNAct(channels, channels // 2, 1, act="lrelu")
        self.layer2 = ConvBNAct(channels // 2, channels, 3, act="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layer2(self.layer1(x))
