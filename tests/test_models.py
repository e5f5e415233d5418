import pytest
import torch

from yoloxdet.models.zoo import MODEL_SPECS, count_parameters, create_model, get_spec

OFFICIAL_PARAMS = {
    "yolox-nano": 912_159,
    "yolox-tiny": 5_055_855,
    "yolox-s": 8_968_255,
    "yolox-m": 25_326_495,
    "yolox-l": 54_208_895,
    "yolox-x": 99_071_455,
    "yolox-darknet53": 63_724_767,
}


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_parameter_counts_equal_official(name):
    assert count_parameters(create_model(name)) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_output_shapes_and_levels(name):
    # every zoo model at a small, non-square input (64 x 96): three levels, strides 8/16/32, ceil-free sizes
    model = create_model(name, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96) * 255)
    anchors = 8 * 12 + 4 * 6 + 2 * 3
    assert out.box_raw.shape == (2, anchors, 4)
    assert out.obj_logits.shape == (2, anchors)
    assert out.cls_logits.shape == (2, anchors, 3)
    assert out.strides == (8, 16, 32)
    assert out.feature_sizes == ((8, 12), (4, 6), (2, 3))
    assert torch.isfinite(out.box_raw).all() and torch.isfinite(out.cls_logits).all()


def test_train_and_eval_return_the_same_type():
    model = create_model("yolox-nano", num_classes=2)
    x = torch.rand(2, 3, 64, 64) * 255
    train_out = model.train()(x)
    eval_out = model.eval()(x)
    assert type(train_out) is type(eval_out)


def test_batchnorm_and_prior_bias_follow_official_init():
    model = create_model("yolox-s")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.eps == 1e-3 and bn.momentum == 0.03 for bn in bns)
    for conv in (*model.head.cls_preds, *model.head.obj_preds):
        assert torch.allclose(conv.bias, torch.full_like(conv.bias, -4.59512), atol=1e-5)


def test_coupled_head_has_fewer_parameters():
    decoupled = count_parameters(create_model("yolox-s", head="coupled"))
    assert decoupled < OFFICIAL_PARAMS["yolox-s"]


def test_model_names_are_forgiving_but_unknown_names_fail():
    assert get_spec("yolox_s").name == "yolox-s"
    assert get_spec("nano").name == "yolox-nano"
    with pytest.raises(KeyError, match="available"):
        get_spec("yolox-q")
