import pytest

from yoloxdet.cli import build_parser, main, parse


def test_train_items_may_follow_options():
    args = parse(build_parser(), ["train", "data.yaml", "--config", "c.yaml", "epochs=3", "batch=2"])
    assert args.items == ["data.yaml", "epochs=3", "batch=2"]
    assert args.config == "c.yaml"


@pytest.mark.parametrize("argv", [["models", "x=1"], ["train", "data.yaml", "--bogus"]])
def test_unknown_arguments_are_rejected(argv):
    with pytest.raises(SystemExit) as exc:
        parse(build_parser(), argv)
    assert exc.value.code == 2


def test_models_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "yolox-nano" in out and "912,159" in out and "yolox-darknet53" in out
