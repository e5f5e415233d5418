"""Necks (reference §2.3, §2.4). They read their input channels from the backbone and declare their own.

The backbone is held as ``self.backbone``, which is why official checkpoint keys start ``backbone.backbone.``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .backbones import CSPDarknet, Darknet53
from .blocks import ConvBNAct, CSPLayer, conv_block


class PAFPN(nn.Module):
    """Path-aggregation FPN over CSPDarknet features; outputs strides 8, 16, 32 with the backbone's
    channels."""

    def __init__(
        self, backbone: CSPDarknet, depth: float, depthwise: bool = False, act: str = "silu"
    ) -> None:
        super().__init__()
        self.backbone = backbone
        c3, c4, c5 = backbone.out_channels
        self.out_channels = (c3, c4, c5)
        self.strides = backbone.strides
        n = round(3 * depth)
        Conv = conv_block(depthwise)

        def csp(in_ch: int, out_ch: int) -> CSPLayer:
            return CSPLayer(in_ch, out_ch, n, shortcut=False, depthwise=depthwise, act=act)

        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = ConvBNAct(c5, c4, 1, act=act)
        self.C3_p4 = csp(2 * c4, c4)
        self.reduce_conv1 = ConvBNAct(c4, c3, 1, act=act)
        self.C3_p3 = csp(2 * c3, c3)
        self.bu_conv2 = Conv(c3, c3, 3, 2, act=act)
        self.C3_n3 = csp(2 * c3, c4)
        self.bu_conv1 = Conv(c4, c4, 3, 2, act=act)
        self.C3_n4 = csp(2 * c4, c5)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x2, x1, x0 = self.backbone(images)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class YOLOFPN(nn.Module):
    """The YOLOv3 FPN over Darknet53; outputs (128, 256, 512) channels at strides 8, 16, 32."""

    def __init__(self, backbone: Darknet53) -> None:
        super().__init__()
        self.backbone = backbone
        c3, c4, c5 = backbone.out_channels  # 256, 512, 512
        self.strides = backbone.strides
        self.out_channels = (c3 // 2, c4 // 2, c5)
        self.out1_cbl = ConvBNAct(c5, c5 // 2, 1, act="lrelu")
        self.out1 = self._embedding(c5 // 2 + c4, c4 // 2)
        self.out2_cbl = ConvBNAct(c4 // 2, c4 // 4, 1, act="lrelu")
        self.out2 = self._embedding(c4 // 4 + c3, c3 // 2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    @staticmethod
    def _embedding(in_ch: int, out_ch: int) -> nn.Sequential:
        return nn.Sequential(
            ConvBNAct(in_ch, out_ch, 1, act="lrelu"),
            ConvBNAct(out_ch, out_ch * 2, 3, act="lrelu"),
            ConvBNAct(out_ch * 2, out_ch, 1, act="lrelu"),
            ConvBNAct(out_ch, out_ch * 2, 3, act="lrelu"),
            ConvBNAct(out_ch * 2, out_ch, 1, act="lrelu"),
        )

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x2, x1, x0 = self.backbone(images)
        out_dark4 = self.out1(torch.cat([self.upsample(self.out1_cbl(x0)), x1], 1))
        out_dark3 = self.out2(torch.cat([self.upsample(self.out2_cbl(out_dark4)), x2], 1))
        return out_dark3, out_dark4, x0
