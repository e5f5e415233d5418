"""Quantisation-aware fine-tuning (``train.quant=qat``): train trained weights under the rounding that
``yoloxdet export --int8 --int8-quantizer ort`` will apply, so that they learn to tolerate it.

:func:`prepare_qat` rewrites every Conv+BN+activation block (``ConvBNAct``) of a model in place into a
:class:`QATConvBNAct` that simulates onnxruntime's static QDQ int8 model (:mod:`yoloxdet.export.int8`) with
``torch.ao.quantization`` fake quantisation, at the tensors where onnxruntime's quantiser puts its Q/DQ pairs
in the exported graph (Conv -> Sigmoid -> Mul for each SiLU):

- conv weights: per output channel, symmetric int8 (-127..127), of the BN-folded weight the export writes;
- the conv output, the sigmoid output and their product (the SiLU output): per-tensor uint8 with the ranges
  of onnxruntime's ``CalibMovingAverage`` (the mean of the per-image min and max; here moving-averaged over
  training steps too);
- a conv input that no such block produced (the outputs of Concat, Add, Resize, MaxPool), as its own tensor.

What the export keeps float stays float: the prediction convs and the decode (plain ``nn.Conv2d``, left
untouched) and the stem (the first block: float weights, output and SiLU; the blocks reading its output: float
input and weights; see :func:`yoloxdet.export.int8.stem_nodes`). The stem's parameters are held fixed.

BatchNorm is frozen and folded on the fly: each block computes ``conv(x, fq(W * g / sqrt(var + eps)))`` plus
the folded bias from its BN's running statistics, which do not change, so the weights that fake quantisation
sees are the ones the export folds and quantises. Parameter names are unchanged: :func:`float_state_dict` (the
trainer's ``model`` entry of every checkpoint) is an ordinary float checkpoint that every export path loads;
the int8 export then calibrates its own ranges as usual. Observers keep updating in training mode only, so an
evaluation (EMA copy in eval mode) uses the ranges learnt in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, PerChannelMinMaxObserver
from torch.ao.quantization.fake_quantize import FakeQuantizeBase

from yoloxdet.models.blocks import ConvBNAct

RANGE_AVERAGING = 0.01  # per step: the observed ranges follow ~the last 100 training batches


class PerImageMinMaxObserver(MovingAverageMinMaxObserver):
    """A tensor's range as onnxruntime's ``CalibMovingAverage`` calibrates it, one image per batch: the mean
    over the batch of each image's min and max, then moving-averaged across steps. Observes in training mode
    only (an eval-mode pass uses the ranges as they are).

    Not yet observed is the empty range (0, 0), not torch's (inf, -inf): the trainer's EMA copy averages these
    buffers, and an infinity would never leave it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.min_val.zero_()
        self.max_val.zero_()

    def forward(self, x_orig: Tensor) -> Tensor:
        if not self.training or x_orig.numel() == 0:
            return x_orig
        x = x_orig.detach().to(self.min_val.dtype)
        per_image = tuple(range(1, x.dim()))  # reduced in place: flattening a channels_last tensor copies it
        low, high = x.amin(per_image).mean(), x.amax(per_image).mean()
        first = self.min_val == self.max_val  # no host sync: both branches computed, one kept
        self.min_val.copy_(torch.where(first, low, torch.lerp(self.min_val, low, self.averaging_constant)))
        self.max_val.copy_(torch.where(first, high, torch.lerp(self.max_val, high, self.averaging_constant)))
        return x_orig


def weight_fake_quant() -> FakeQuantize:
    """Per-channel symmetric int8 on axis 0, scale max|w| / 127: onnxruntime's QInt8 conv weights."""
    return FakeQuantize(
        observer=PerChannelMinMaxObserver,
        quant_min=-127,
        quant_max=127,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
    )


def activation_fake_quant() -> FakeQuantize:
    """Per-tensor asymmetric uint8 (range widened to hold 0): onnxruntime's QUInt8 activations."""
    return FakeQuantize(
        observer=PerImageMinMaxObserver,
        quant_min=0,
        quant_max=255,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
        averaging_constant=RANGE_AVERAGING,
    )


class QATConvBNAct(nn.Module):
    """A ``ConvBNAct`` (same ``conv``, ``bn``, ``act`` submodules and parameter names) with its BN frozen and
    folded, fake-quantised as onnxruntime's QDQ model runs it.

    Args:
        weights: fake-quantise the folded weights (False for the stem and the blocks reading its output).
        input_fq: the input's fake quantisation where no fake-quantised block produced the input (shared by
            the blocks reading the same tensor, as one Q/DQ pair in the graph), else None.
        outputs: fake-quantise the conv output, sigmoid output and activation output (False for the stem).
    """

    def __init__(
        self, block: ConvBNAct, *, weights: bool, input_fq: FakeQuantize | None, outputs: bool
    ) -> None:
        super().__init__()
        self.conv, self.bn, self.act = block.conv, block.bn, block.act
        self.weight_fq = weight_fake_quant() if weights else None
        self.input_fq = input_fq
        self.conv_fq = activation_fake_quant() if outputs else None
        self.sigmoid_fq = activation_fake_quant() if outputs and isinstance(block.act, nn.SiLU) else None
        self.act_fq = activation_fake_quant() if outputs else None
        if self.weight_fq is not None:
            with torch.no_grad():  # per-channel buffers take their shape now, before the EMA copies them
                self.weight_fq(self.folded()[0])

    def folded(self) -> tuple[Tensor, Tensor]:
        """The conv weight and bias with the BN folded in (running statistics: what the export folds)."""
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        return conv.weight * scale.reshape(-1, 1, 1, 1), bias

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.folded()
        if self.weight_fq is not None:
            weight = self.weight_fq(weight)
        if self.input_fq is not None:
            x = self.input_fq(x)
        conv = self.conv
        y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        if self.conv_fq is None or self.act_fq is None:
            return self.act(y)
        y = self.conv_fq(y)
        if self.sigmoid_fq is not None:  # SiLU as the export writes it: Sigmoid, then Mul
            return self.act_fq(y * self.sigmoid_fq(torch.sigmoid(y)))
        return self.act_fq(self.act(y))


def _blocks_in_run_order(model: nn.Module, input_size: tuple[int, int]) -> list[tuple[str, Tensor, Tensor]]:
    """(name, input, output) of every ``ConvBNAct`` in the order one forward pass runs them."""
    names = {id(m): name for name, m in model.named_modules() if isinstance(m, ConvBNAct)}
    runs: list[tuple[str, Tensor, Tensor]] = []

    def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        runs.append((names[id(module)], inputs[0], output))  # the tensors are held, so no id is reused

    handles = [m.register_forward_hook(record) for m in model.modules() if id(m) in names]
    was_training = model.training
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.eval()(torch.zeros(1, 3, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return runs


def prepare_qat(model: nn.Module, input_size: tuple[int, int] = (64, 64)) -> nn.Module:
    """Make ``model`` (trained weights) quantisation-aware in place (see the module docstring); returns it.

    One forward pass at ``input_size`` (a multiple of 32) finds the stem, the blocks reading its output, and
    the blocks whose input no other block produced.
    """
    runs = _blocks_in_run_order(model, input_size)
    if not runs:
        raise ValueError("prepare_qat: the model has no ConvBNAct blocks")
    stem_name, _, stem_output = runs[0]
    produced = {id(output) for _, _, output in runs}
    input_fqs: dict[int, FakeQuantize] = {}  # by input tensor
    for name, inputs, _ in runs:
        quantized = name != stem_name and inputs is not stem_output
        input_fq = None
        if quantized and id(inputs) not in produced:
            input_fq = input_fqs.setdefault(id(inputs), activation_fake_quant())
        block = QATConvBNAct(
            model.get_submodule(name), weights=quantized, input_fq=input_fq, outputs=name != stem_name
        )
        model.set_submodule(name, block)
    for param in model.get_submodule(stem_name).parameters():
        # the stem stays float in the export, and its input is 0-255 pixels: with BN folded (nothing
        # normalises by batch statistics) one step at a fine-tuning lr changed its weights by ~130%
        param.requires_grad_(False)
    return model


def float_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s state dict without the fake-quantisation entries: the weights of the plain float model (a
    model without fake quantisation gives its whole state dict)."""
    modules = model.named_modules(remove_duplicate=False)  # a shared input fake-quant: under every name
    fake_quant = tuple(f"{name}." for name, m in modules if isinstance(m, FakeQuantizeBase))
    return {key: value for key, value in model.state_dict().items() if not key.startswith(fake_quant)}
