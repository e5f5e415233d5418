"""Our checkpoint format, official-format .pth files, the release download cache and BN calibration."""

import time

import pytest
import torch
from torch import nn

from yoloxdet.cli import main
from yoloxdet.models.zoo import create_model
from yoloxdet.weights import (
    CheckpointInfo,
    WeightsDownloadError,
    calibrate_batchnorm,
    fetch_official,
    load_model,
    read_checkpoint,
    save_checkpoint,
)

IMAGES = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0)) * 255


def _perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Move every float tensor away from its init so a load that silently kept the init would show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = (
                    torch.rand(tensor.shape, generator=gen)
                    if "running_var" in name
                    else torch.randn(tensor.shape, generator=gen)
                )
                tensor.add_(0.05 * noise)
    return model


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def nano():
    return _perturbed(create_model("yolox-nano", num_classes=2)).eval()


def test_our_checkpoint_round_trip(tmp_path, nano):
    info = CheckpointInfo("yolox-nano", 2, ("cat", "dog"), (320, 384))
    path = tmp_path / "model.pt"
    save_checkpoint(path, nano, info, extra={"config": {"lr": 0.01}})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind
    raw = read_checkpoint(path)
    assert raw["format"] == "yoloxdet/1" and raw["config"] == {"lr": 0.01}
    assert all(isinstance(v, torch.Tensor) for v in raw["model"].values())  # a state dict, not a module
    model, loaded = load_model(path)
    assert loaded == info and not model.training
    _assert_same_state(model, nano)


def test_class_names_rename_and_errors(tmp_path, nano):
    path = tmp_path / "model.pt"
    save_checkpoint(path, nano, CheckpointInfo("yolox-nano", 2, ("cat", "dog"), (416, 416)))
    with pytest.raises(ValueError, match="holds yolox-nano weights, not yolox-s"):
        load_model(path, model_name="yolox-s")
    model, info = load_model(path, model_name="yolox-nano", class_names=["a", "b"])
    assert info.class_names == ("a", "b")
    _assert_same_state(model, nano)
    with pytest.raises(ValueError, match="3 class names"):
        load_model(path, num_classes=2, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="class names"):
        CheckpointInfo("yolox-nano", 2, ("cat",), (416, 416))


def test_read_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        read_checkpoint(tmp_path / "nope.pt")
    pickled = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), pickled)  # a pickled module must not be unpickled
    with pytest.raises(ValueError, match=r"module\.pt: holds pickled objects"):
        read_checkpoint(pickled)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pth"):
        load_model(garbage, model_name="yolox-nano")


def test_official_pth_needs_model_name_and_loads(tmp_path, nano):
    path = tmp_path / "official.pth"
    torch.save({"start_epoch": 10, "model": nano.state_dict(), "optimizer": {}}, path)
    with pytest.raises(ValueError, match="needs the model name"):
        load_model(path)
    model, info = load_model(path, model_name="nano")
    assert (info.model_name, info.num_classes, info.class_names) == ("yolox-nano", 2, ("class0", "class1"))
    _assert_same_state(model, nano)


def test_training_checkpoint_is_read(tmp_path, nano):
    path = tmp_path / "best.pt"
    config = {
        "model": {"name": "yolox-nano", "num_classes": 2, "head": "decoupled"},
        "train": {"input_size": [320, 320]},
        "eval": {"input_size": None},
    }
    torch.save(
        {
            "format": "yoloxdet-train/1",
            "model": nano.state_dict(),
            "config": config,
            "class_names": ["cat", "dog"],
            "model_name": "yolox-nano",
        },
        path,
    )
    model, info = load_model(path)
    assert info == CheckpointInfo("yolox-nano", 2, ("cat", "dog"), (320, 320))
    _assert_same_state(model, nano)


def test_fetch_official_from_file_url_and_zoo_name(tmp_path, monkeypatch, nano):
    release = tmp_path / "release"
    release.mkdir()
    torch.save({"model": nano.state_dict()}, release / "yolox_nano.pth")
    cache = tmp_path / "cache"
    path = fetch_official("yolox-nano", base_url=release.as_uri() + "/", cache_dir=cache)
    assert path == cache / "yolox_nano.pth" and path.read_bytes() == (release / "yolox_nano.pth").read_bytes()
    assert [p.name for p in cache.iterdir()] == ["yolox_nano.pth"]
    monkeypatch.setenv("YOLOXDET_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "weights").mkdir(parents=True)
    (tmp_path / "home" / "weights" / "yolox_nano.pth").write_bytes(path.read_bytes())
    model, info = load_model("yolox-nano")  # resolved through the cache, no network
    assert info.model_name == "yolox-nano"
    _assert_same_state(model, nano)


def test_fetch_official_offline_fails_fast_with_instructions(tmp_path):
    start = time.monotonic()
    with pytest.raises(WeightsDownloadError) as err:
        fetch_official("yolox-s", base_url="http://127.0.0.1:9/", cache_dir=tmp_path, timeout=2.0)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "http://127.0.0.1:9/yolox_s.pth" in message and str(tmp_path / "yolox_s.pth") in message
    assert list(tmp_path.iterdir()) == []  # no partial download left


def test_unknown_source_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="not a model name"):
        load_model("yolox-huge")


def _folded_toy(seed: int = 0) -> nn.Sequential:
    """Two Conv + identity-BN-with-bias blocks, as an ONNX import leaves them."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8, eps=1e-3),
        nn.SiLU(),
        nn.Conv2d(8, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4, eps=1e-3),
    )
    with torch.no_grad():
        for conv in (model[0], model[3]):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.1)
        for bn in (model[1], model[4]):
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen))
    return model


def test_calibration_keeps_eval_output_and_fixes_train_mode():
    model = _folded_toy()
    data = torch.rand(16, 3, 12, 12, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        before = model.eval()(data)
        identity_train = model.train()(data)
    model = _folded_toy()  # train-mode forward updated the running stats; start over
    calibrate_batchnorm(model.eval(), data.split(4))
    assert not model.training  # mode restored
    with torch.no_grad():
        after = model(data)
        calibrated_train = model.train()(data)
    scale = before.abs().max()
    assert (after - before).abs().max() < 1e-4 * scale
    assert (identity_train - before).abs().max() > 0.2 * scale
    assert (calibrated_train - before).abs().max() < 1e-3 * scale


def test_calibration_needs_images():
    with pytest.raises(ValueError, match="no images"):
        calibrate_batchnorm(_folded_toy(), [])


def test_import_weights_cli_from_pth(tmp_path, nano, capsys):
    source = tmp_path / "official.pth"
    torch.save({"model": nano.state_dict(), "optimizer": {}}, source)
    out = tmp_path / "ours.pt"
    assert main(["import-weights", str(source), "--model", "yolox-nano", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    model, info = load_model(out)
    assert info.num_classes == 2
    _assert_same_state(model, nano)
    assert main(["import-weights", str(source), "-o", str(out)]) == 2  # official file without --model
    assert "needs the model name" in capsys.readouterr().err
