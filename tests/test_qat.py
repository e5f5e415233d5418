"""Quantisation-aware fine-tuning (``train.quant=qat``): fake quantisation where onnxruntime's int8 export
quantises, a normal training run under it, and a checkpoint that loads and exports as a plain float model.

Tiny on purpose (random YOLOX-Nano, 64 px shapes); what QAT recovers on real weights is measured by
benchmarks/bench_qat.py.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from _shapes_data import CLASSES, write_shapes_dataset
from oracle.peer import randomize_
from torch.ao.quantization import disable_fake_quant

from yoloxdet.cli import main
from yoloxdet.engine.checkpoint import load_training_checkpoint
from yoloxdet.engine.qat import QATConvBNAct, prepare_qat
from yoloxdet.export.int8 import float_node_names
from yoloxdet.models.zoo import create_model
from yoloxdet.weights import CheckpointInfo, load_model, save_checkpoint


def test_qat_leaves_the_prediction_convs_and_the_stem_float_and_computes_the_float_model_without_rounding():
    model = randomize_(create_model("yolox-nano", num_classes=2)).eval()  # BN statistics not trivial
    images = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        expected = model(images)
    qat = prepare_qat(model)
    blocks = {name: m for name, m in qat.named_modules() if isinstance(m, QATConvBNAct)}
    stem = blocks.pop("backbone.backbone.stem.conv")
    assert stem.weight_fq is None and stem.input_fq is None and stem.act_fq is None  # all float
    after_stem = blocks.pop("backbone.backbone.dark2.0.dconv")  # reads the stem's output: float in, float W
    assert after_stem.weight_fq is None and after_stem.input_fq is None and after_stem.act_fq is not None
    assert all(b.weight_fq is not None and b.act_fq is not None for b in blocks.values())
    # a concatenation is fake-quantised once, before the convs that read it (CSP conv3, SPP conv2)
    assert blocks["backbone.C3_p4.conv1"].input_fq is blocks["backbone.C3_p4.conv2"].input_fq is not None
    assert blocks["backbone.backbone.dark5.1.conv2"].input_fq is not None
    assert blocks["head.stems.0"].input_fq is None  # produced by a fake-quantised block
    for preds in (qat.head.cls_preds, qat.head.reg_preds, qat.head.obj_preds):
        assert all(type(conv) is torch.nn.Conv2d for conv in preds)  # the float tail is untouched
    qat.train()(images)  # observers see one batch
    qat.eval()
    with torch.no_grad():
        rounded = qat(images)
        qat.apply(disable_fake_quant)
        unrounded = qat(images)
    assert not torch.allclose(rounded.cls_logits, expected.cls_logits, atol=1e-3)  # int8 rounding simulated
    torch.testing.assert_close(unrounded.cls_logits, expected.cls_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(unrounded.box_raw, expected.box_raw, atol=1e-3, rtol=1e-4)


def test_qat_needs_initial_weights(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=2, val=0, size=64)
    assert main(["train", str(data), "model=yolox-nano", "quant=qat", f"output_dir={tmp_path}"]) == 2
    assert "train.weights" in capsys.readouterr().err
    assert main(["train", str(data), "quant=int8", f"output_dir={tmp_path}"]) == 2
    assert "train.quant" in capsys.readouterr().err


@pytest.mark.slow
def test_qat_run_saves_a_float_checkpoint_that_exports_where_it_was_fake_quantised(tmp_path: Path) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=4, val=2, size=64)  # one step, one evaluation
    torch.manual_seed(0)
    start_model = create_model("yolox-nano", num_classes=2)
    start = tmp_path / "start.pt"
    save_checkpoint(start, start_model, CheckpointInfo.default("yolox-nano", 2, CLASSES))
    args = ["input_size=64", "batch=4", "workers=0", "multiscale_range=0", "no_aug_epochs=0"]
    args += ["warmup_epochs=0", f"output_dir={tmp_path / 'runs'}", "train.name=qat", "--no-progress"]
    assert (
        main(["train", str(data), "model=yolox-nano", "quant=qat", f"weights={start}", "epochs=1", *args])
        == 0
    )
    last = tmp_path / "runs" / "qat" / "last.pt"
    payload = load_training_checkpoint(last)
    assert any(".act_fq." in key for key in payload["train_model"])  # kept for --resume
    assert not any("_fq." in key for key in payload["model"])  # the inference weights: a plain model's
    model, _ = load_model(last)
    moved = [
        not torch.equal(a, b) for a, b in zip(model.state_dict().values(), start_model.state_dict().values())
    ]
    assert any(moved)  # it trained

    out = tmp_path / "qat_int8.onnx"
    calibrate = ["--calibrate", str(tmp_path / "shapes" / "images" / "train"), "--calib-images", "2"]
    export = ["export", str(last), "--int8", "--int8-quantizer", "ort", "--static-size", "-o", str(out)]
    assert main([*export, *calibrate]) == 0
    # the export quantised exactly the convs whose weights and outputs QAT fake-quantised; the rest is float
    graph = onnx.load(str(out)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    qat = prepare_qat(model)
    blocks = [m for m in qat.modules() if isinstance(m, QATConvBNAct)]
    assert sum(n.input[1] in dequantized for n in convs) == sum(b.weight_fq is not None for b in blocks)
    assert sum(n.output[0] in quantized for n in convs) == sum(b.conv_fq is not None for b in blocks)
    # the prediction convs (whose input QAT rounds too: the act_fq before them) and the decode stay float
    preds = [n for n in convs if any(k in n.input[1] for k in ("cls_preds", "obj_preds", "reg_preds"))]
    assert len(preds) == 9
    assert not any(name in dequantized for n in preds for name in n.input[1:])
    assert not any(n.output[0] in quantized for n in preds)
    assert {n.name for n in graph.node if n.op_type == "Exp"} <= set(float_node_names(out))
