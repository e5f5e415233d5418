"""Import official ONNX exports (BatchNorm folded into the convolutions) as a normal, trainable model.

The export keeps no parameter names, only ``Conv`` nodes with a weight and a folded bias. Its graph lists them
in the order the official model runs them, so they pair one-to-one with our ``nn.Conv2d`` modules in run order
(recorded with forward hooks). A folded conv goes into a Conv+BN block as identity BN plus bias (running_mean
0, running_var 1-eps, weight 1, bias b): exact in eval mode; call ``calibrate_batchnorm`` before training with
it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..config import DEFAULT_HEAD
from ..models.yolox import YOLOX
from ..models.zoo import create_model


def _read_onnx_convs(path: Path) -> tuple[list[tuple[str, dict, np.ndarray, np.ndarray | None]], int]:
    """(node name, attributes, weight, bias) of every Conv node in graph order, and the model's class
    count."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf decode errors have no common type
        raise ValueError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # some exporters store weights as Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    convs = []
    for index, node in enumerate(n for n in graph.node if n.op_type == "Conv"):
        name = node.name or f"Conv #{index}"
        if node.input[1] not in tensors or (len(node.input) > 2 and node.input[2] not in tensors):
            raise ValueError(f"{path}: {name} takes its weights from a computed tensor; expected constants")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        bias = tensors[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        convs.append((name, attrs, tensors[node.input[1]], bias))
    dims = graph.output[0].type.tensor_type.shape.dim if graph.output else []
    last = dims[-1].dim_value if len(dims) == 3 else 0
    if last <= 5:
        raise ValueError(f"{path}: output is not the official [batch, anchors, 5 + classes] layout")
    return convs, int(last) - 5


def convs_in_run_order(
    model: nn.Module, input_size: tuple[int, int] = (64, 64)
) -> list[tuple[str, nn.Conv2d]]:
    """(qualified name, module) of every ``nn.Conv2d`` in the order the model runs them, recorded with forward
    hooks; our modules run their convs in the official order, which the export's graph follows."""
    names = {id(m): n for n, m in model.named_modules()}
    order: list[tuple[str, nn.Conv2d]] = []
    handles = [
        m.register_forward_pre_hook(lambda module, _inputs: order.append((names[id(module)], module)))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return order


def _check_pair(path: Path, node: str, attrs: dict, weight: np.ndarray, name: str, conv: nn.Conv2d) -> None:
    expected = {"shape": tuple(conv.weight.shape), "group": conv.groups, "strides": list(conv.stride)}
    found = {
        "shape": tuple(weight.shape),
        "group": attrs.get("group", 1),
        "strides": list(attrs.get("strides", [1, 1])),
    }
    if expected != found:
        raise ValueError(f"{path}: ONNX {node} {found} does not match {name} {expected}; wrong --model?")


def _identity_bn_with_bias(bn: nn.BatchNorm2d, bias: Tensor) -> None:
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # so that sqrt(var + eps) == 1
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)


def import_onnx(path: str | Path, model_name: str, head: str = DEFAULT_HEAD) -> YOLOX:
    """A ``model_name`` model carrying the weights of an official BN-folded ONNX export (eval mode, CPU).

    Raises:
        ValueError: the graph's convolutions do not pair with the model's (count, shape, groups or stride).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX file not found")
    nodes, num_classes = _read_onnx_convs(path)
    model = create_model(model_name, num_classes, head)
    convs = convs_in_run_order(model)
    if len(nodes) != len(convs):
        raise ValueError(f"{path}: {len(nodes)} Conv nodes but {model_name} has {len(convs)} convolutions")
    modules = dict(model.named_modules())
    for (node, attrs, weight, bias), (name, conv) in zip(nodes, convs):
        _check_pair(path, node, attrs, weight, name, conv)
        b = torch.from_numpy(bias.copy()) if bias is not None else torch.zeros(conv.out_channels)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            if conv.bias is not None:
                conv.bias.copy_(b)
                continue
        bn = modules.get(name.rsplit(".", 1)[0] + ".bn")
        if not isinstance(bn, nn.BatchNorm2d):
            raise ValueError(f"{path}: {name} has neither a bias nor a BatchNorm to take the folded bias")
        _identity_bn_with_bias(bn, b)
    return model.eval()
