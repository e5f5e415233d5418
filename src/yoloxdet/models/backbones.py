"""Backbones (reference §2.2, §2.4). Each declares the channels and strides of the features it returns."""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBNAct, CSPLayer, Focus, ResLayer, SPPBottleneck, conv_block


class CSPDarknet(nn.Module):
    """CSPDarknet of YOLOX-Nano ... X. Returns (dark3, dark4, dark5) at strides 8, 16, 32."""

    strides = (8, 16, 32)

    def __init__(self, depth: float, width: float, depthwise: bool = False, act: str = "silu") -> None:
        super().__init__()
        Conv = conv_block(depthwise)
        bc = int(width * 64)  # base channels
        bd = max(round(depth * 3), 1)  # base depth
        self.out_channels = (4 * bc, 8 * bc, 16 * bc)

        self.stem = Focus(3, bc, kernel=3, act=act)
        self.dark2 = nn.Sequential(
            Conv(bc, 2 * bc, 3, 2, act=act), CSPLayer(2 * bc, 2 * bc, n=bd, depthwise=depthwise, act=act)
        )
        self.dark3 = nn.Sequential(
            Conv(2 * bc, 4 * bc, 3, 2, act=act),
            CSPLayer(4 * bc, 4 * bc, n=3 * bd, depthwise=depthwise, act=act),
        )
        self.dark4 = nn.Sequential(
            Conv(4 * bc, 8 * bc, 3, 2, act=act),
            CSPLayer(8 * bc, 8 * bc, n=3 * bd, depthwise=depthwise, act=act),
        )
        self.dark5 = nn.Sequential(
            Conv(8 * bc, 16 * bc, 3, 2, act=act),
            SPPBottleneck(16 * bc, 16 * bc, act=act),
            CSPLayer(16 * bc, 16 * bc, n=bd, shortcut=False, depthwise=depthwise, act=act),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return c3, c4, c5


class Darknet53(nn.Module):
    """Darknet53 of YOLOv3 with the SPP block unpacked into ``dark5`` (as the official checkpoint lays it
    out).

    Returns (dark3 256ch, dark4 512ch, dark5 512ch) at strides 8, 16, 32. Activations are LeakyReLU(0.1).
    """

    strides = (8, 16, 32)
    out_channels = (256, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        blocks = (2, 8, 8, 4)

        def stage(in_ch: int, n: int) -> list[nn.Module]:
            return [ConvBNAct(in_ch, in_ch * 2, 3, 2, act="lrelu"), *(ResLayer(in_ch * 2) for _ in range(n))]

        self.stem = nn.Sequential(ConvBNAct(3, 32, 3, 1, act="lrelu"), *stage(32, 1))
        self.dark2 = nn.Sequential(*stage(64, blocks[0]))
        self.dark3 = nn.Sequential(*stage(128, blocks[1]))
        self.dark4 = nn.Sequential(*stage(256, blocks[2]))
        self.dark5 = nn.Sequential(
            *stage(512, blocks[3]),
            ConvBNAct(1024, 512, 1, act="lrelu"),
            ConvBNAct(512, 1024, 3, act="lrelu"),
            SPPBottleneck(1024, 512, act="lrelu"),
            ConvBNAct(512, 1024, 3, act="lrelu"),
            ConvBNAct(1024, 512, 1, act="lrelu"),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return c3, c4, c5
