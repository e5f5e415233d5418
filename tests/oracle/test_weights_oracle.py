"""Official-format checkpoints (state dict of the peer model under "model") through our loaders."""

import logging

import pytest
import torch

from yoloxdet.models.zoo import create_model
from yoloxdet.ops.decode import decode
from yoloxdet.weights import load_model, load_state_dict_into
from yoloxdet.weights.onnx_import import convs_in_run_order

from .peer import peer_model, randomize_

IMAGES = torch.rand(2, 3, 128, 160, generator=torch.Generator().manual_seed(3)) * 255


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory):
    """A randomised official nano saved as the release files are: {"model": sd, "optimizer": ..., ...}."""
    peer = randomize_(peer_model("yolox-nano"), seed=5).eval()
    path = tmp_path_factory.mktemp("official") / "yolox_nano.pth"
    optimizer = torch.optim.SGD(peer.parameters(), lr=0.01, momentum=0.9)
    torch.save({"start_epoch": 300, "model": peer.state_dict(), "optimizer": optimizer.state_dict()}, path)
    with torch.no_grad():
        expected = peer(IMAGES)  # decoded [B, A, 85], official eval output
    return path, peer.state_dict(), expected


def test_official_pth_loads_with_identical_outputs(official_pth):
    path, _, expected = official_pth
    model, info = load_model(path, model_name="yolox-nano")
    assert not model.training
    assert (info.model_name, info.num_classes, info.input_size) == ("yolox-nano", 80, (416, 416))
    assert info.class_names[0] == "person" and info.class_names[-1] == "toothbrush"
    with torch.no_grad():
        ours = decode(model(IMAGES))
    assert (ours - expected).abs().max() < 1e-4


def test_other_class_count_reinitialises_only_class_predictors(official_pth, caplog):
    path, official, _ = official_pth
    with caplog.at_level(logging.INFO, logger="yoloxdet.weights"):
        model, info = load_model(path, model_name="yolox-nano", num_classes=3)
    assert info.num_classes == 3 and len(info.class_names) == 3
    assert "re-initialised the class predictors" in caplog.text and "head.cls_preds.0.weight" in caplog.text
    ours = model.state_dict()
    changed = sorted(
        k for k in ours if ours[k].shape != official[k].shape or not torch.equal(ours[k], official[k])
    )
    assert changed == sorted(f"head.cls_preds.{i}.{p}" for i in range(3) for p in ("weight", "bias"))
    assert ours["head.cls_preds.0.weight"].shape == (3, 64, 1, 1)
    # the prior bias of a fresh head: every initial class score is 0.01
    assert torch.allclose(ours["head.cls_preds.1.bias"].sigmoid(), torch.full((3,), 0.01))


@pytest.mark.parametrize("problem", ["missing", "extra", "shape"])
def test_non_class_mismatch_raises_listing_keys(official_pth, problem):
    _, official, _ = official_pth
    state = dict(official)
    key = "backbone.C3_p4.conv1.bn.running_mean"
    if problem == "missing":
        del state[key]
    elif problem == "extra":
        state["backbone.extra_layer.weight"] = torch.zeros(1)
        key = "backbone.extra_layer.weight"
    else:
        state[key] = torch.zeros(7)
    model = create_model("yolox-nano")
    with pytest.raises(ValueError, match="do not fit") as err:
        load_state_dict_into(model, state, source="some.pth")
    assert key in str(err.value) and "some.pth" in str(err.value)


def test_mismatch_of_class_count_and_other_key_still_raises(official_pth):
    _, official, _ = official_pth
    state = {k: v for k, v in official.items() if k != "head.stems.0.conv.weight"}
    with pytest.raises(ValueError, match=r"head\.stems\.0\.conv\.weight"):
        load_state_dict_into(create_model("yolox-nano", num_classes=3), state)


@pytest.mark.parametrize("name", ["yolox-nano", "yolox-s"])
def test_conv_order_for_onnx_pairing_is_the_official_run_order(name):
    """ONNX graphs list convs in the order the official model runs them; ours must run them in the same order
    (CSPLayer: conv1, conv2, then the bottlenecks; head: the cls branch before the reg branch)."""
    peer = peer_model(name).eval()
    names = {id(m): n for n, m in peer.named_modules()}
    official: list[str] = []
    handles = [
        m.register_forward_pre_hook(lambda mod, _: official.append(names[id(mod)]))
        for m in peer.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        peer(torch.zeros(1, 3, 64, 64))
    for handle in handles:
        handle.remove()
    ours = [n for n, _ in convs_in_run_order(create_model(name))]
    assert ours == official
