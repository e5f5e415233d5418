"""The model zoo: one table of variants and one factory (the only registry in the package).

Multipliers and defaults follow the official ``exps/default/*.py`` (reference §1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import DEFAULT_HEAD, HEAD_KINDS
from .backbones import CSPDarknet, Darknet53
from .heads import CoupledHead, DecoupledHead
from .necks import PAFPN, YOLOFPN
from .yolox import YOLOX

RELEASE_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    depth: float
    width: float
    depthwise: bool = False
    act: str = "silu"
    backbone: str = "cspdarknet"  # or "darknet53"
    input_size: int = 640  # default train and eval size (square)
    weights_file: str = ""  # file name of the official COCO release
    # training defaults that differ from the base recipe (reference §1 "Eval input sizes", §4)
    mosaic_prob: float = 1.0
    enable_mixup: bool = True
    mosaic_scale: tuple[float, float] = (0.1, 2.0)
    random_size: tuple[int, int] | None = None  # multiscale range in units of 32; None: input/32 +- 5

    @property
    def weights_url(self) -> str:
        return RELEASE_URL + self.weights_file


_SMALL = {"input_size": 416, "enable_mixup": False, "mosaic_scale": (0.5, 1.5), "random_size": (10, 20)}

MODEL_SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec(
            "yolox-nano", 0.33, 0.25, depthwise=True, weights_file="yolox_nano.pth", mosaic_prob=0.5, **_SMALL
        ),
        ModelSpec("yolox-tiny", 0.33, 0.375, weights_file="yolox_tiny.pth", **_SMALL),
        ModelSpec("yolox-s", 0.33, 0.50, weights_file="yolox_s.pth"),
        ModelSpec("yolox-m", 0.67, 0.75, weights_file="yolox_m.pth"),
        ModelSpec("yolox-l", 1.0, 1.0, weights_file="yolox_l.pth"),
        ModelSpec("yolox-x", 1.33, 1.25, weights_file="yolox_x.pth"),
        ModelSpec(
            "yolox-darknet53", 1.0, 1.0, act="lrelu", backbone="darknet53", weights_file="yolox_darknet.pth"
        ),
    )
}

HEADS = dict(zip(HEAD_KINDS, (DecoupledHead, CoupledHead), strict=True))  # in HEAD_KINDS order


def get_spec(name: str) -> ModelSpec:
    key = name.lower().replace("_", "-")
    if key == "yolov3":
        key = "yolox-darknet53"
    if not key.startswith("yolox-") and f"yolox-{key}" in MODEL_SPECS:
        key = f"yolox-{key}"
    if key not in MODEL_SPECS:
        raise KeyError(f"unknown model '{name}'; available: {', '.join(MODEL_SPECS)}")
    return MODEL_SPECS[key]


def list_models() -> list[str]:
    return list(MODEL_SPECS)


def create_model(name: str, num_classes: int = 80, head: str = DEFAULT_HEAD) -> YOLOX:
    """Build a randomly initialised zoo model (official init: BN eps 1e-3 / momentum 0.03, prior biases).

    Example:
        >>> model = create_model("yolox-nano", num_classes=3)
        >>> sum(p.numel() for p in create_model("yolox-s").parameters())
        8968255
    """
    spec = get_spec(name)
    if head not in HEADS:
        raise KeyError(f"unknown head '{head}'; available: {', '.join(HEADS)}")
    if spec.backbone == "darknet53":
        neck: nn.Module = YOLOFPN(Darknet53())
    else:
        neck = PAFPN(
            CSPDarknet(spec.depth, spec.width, spec.depthwise, spec.act), spec.depth, spec.depthwise, spec.act
        )
    hidden = int(256 * spec.width)
    head_module = HEADS[head](num_classes, neck.out_channels, neck.strides, hidden, spec.depthwise, spec.act)
    return YOLOX(neck, head_module)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, size: int) -> float:
    """Forward GFLOPs (2 x multiply-adds of convs, as thop-based official figures) at a square input size."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
    return counter.get_total_flops() / 1e9
