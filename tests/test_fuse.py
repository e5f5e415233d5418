"""Conv+BN folding and the fast inference copy: same outputs as the eval-mode model, original left
untouched."""

from __future__ import annotations

import pytest
import torch
from oracle.peer import randomize_
from torch import nn

from yoloxdet.models.fuse import fold_conv_bn, fuse_model, optimize_for_inference
from yoloxdet.models.zoo import create_model
from yoloxdet.ops.decode import decode


def _images(batch: int = 2, height: int = 96, width: int = 128) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(3)) * 255


def test_fold_conv_bn_matches_bn_of_conv_for_grouped_and_biased_convs():
    gen = torch.Generator().manual_seed(0)
    for groups, bias in [(1, False), (4, True)]:
        conv = nn.Conv2d(8, 12, 3, 2, 1, groups=groups, bias=bias)
        bn = nn.BatchNorm2d(12, eps=1e-3).eval()
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(12, generator=gen))
            bn.running_var.copy_(torch.rand(12, generator=gen) + 0.1)
            bn.weight.copy_(torch.randn(12, generator=gen))
            bn.bias.copy_(torch.randn(12, generator=gen))
        x = torch.randn(2, 8, 9, 11, generator=gen)
        torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["yolox-nano", "yolox-s", "yolox-darknet53"])
def test_fused_model_outputs_equal_eval_model_within_1e_4(name):
    model = randomize_(create_model(name)).eval()
    images = _images()
    with torch.no_grad():
        expected = model(images)
        fused = fuse_model(model)
        got = fused(images)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the original must keep its BNs"
    for field in ("box_raw", "obj_logits", "cls_logits"):
        want, have = getattr(expected, field), getattr(got, field)
        # random weights make some logits large: the error is relative to the tensor's magnitude
        assert (have - want).abs().max() <= 1e-4 * want.abs().max().clamp(min=1), field


def test_fuse_leaves_a_training_model_in_training_mode_and_unchanged():
    model = randomize_(create_model("yolox-nano"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fuse_model(model)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_optimize_for_inference_channels_last_matches_and_accepts_both_layouts():
    model = randomize_(create_model("yolox-tiny")).eval()
    images = _images(batch=1, height=128, width=96)
    fast = optimize_for_inference(model)
    assert fast.backbone.backbone.stem.conv.conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = decode(model(images))
        for layout in (torch.contiguous_format, torch.channels_last):
            got = decode(fast(images.contiguous(memory_format=layout)))
            torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the original must keep its BNs"
    # the compiled copy (compile=True) is checked end to end by test_predict_cli's --compile test: one
    # Inductor compile of Nano takes 1-2 minutes of the suite on 2 cores


def test_detector_from_checkpoint_folds_bn_by_default_and_matches_the_unfused_model(tmp_path):
    from yoloxdet import Detector
    from yoloxdet.weights import CheckpointInfo, save_checkpoint

    model = randomize_(create_model("yolox-nano")).eval()
    path = tmp_path / "nano.pt"
    save_checkpoint(
        path, model, CheckpointInfo("yolox-nano", 80, tuple(f"c{i}" for i in range(80)), (160, 160))
    )
    image = (
        (torch.rand(120, 150, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    )
    fast = Detector.from_checkpoint(path, conf_threshold=0.01)
    plain = Detector.from_checkpoint(path, conf_threshold=0.01, fast=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.backend.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.backend.model.modules())
    [got], [want] = fast.predict(image), plain.predict(image)
    assert len(want.xyxy) > 0
    torch.testing.assert_close(torch.as_tensor(got.xyxy), torch.as_tensor(want.xyxy), atol=1e-2, rtol=1e-4)
    torch.testing.assert_close(
        torch.as_tensor(got.scores), torch.as_tensor(want.scores), atol=1e-4, rtol=1e-4
    )
