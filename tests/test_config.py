"""Config: defaults, YAML files and key=value overrides, choice values checked at build time with "did you
mean"."""

import dataclasses

import pytest

from yoloxdet.assign import available
from yoloxdet.config import (
    CHOICES,
    Config,
    ConfigError,
    EvalConfig,
    ExportConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    eval_input_size,
    from_dict,
    load_config,
    to_dict,
    with_changes,
)


def test_defaults_follow_the_official_base_experiment():
    config = Config()
    assert (config.model.name, config.model.head, config.train.assigner) == ("yolox-s", "decoupled", "simota")
    assert (config.eval.conf_threshold, config.eval.nms_iou_threshold) == (0.001, 0.65)


def test_overrides_by_section_and_bare_key_parse_yaml_values():
    config = apply_overrides(
        Config(),
        [
            "epochs=12",
            "model.head=coupled",
            "train.input_size=[320, 416]",
            "train.amp=bf16",
            "data.cache=ram",
            "augment.mosaic_scale=[0.5, 1.5]",
        ],
    )
    assert config.train.epochs == 12
    assert config.model.head == "coupled"
    assert config.data.cache == "ram"
    assert config.augment.mosaic_scale == (0.5, 1.5)
    assert config.train.amp == "bf16"


def test_a_bare_key_owned_by_two_sections_is_ambiguous():
    with pytest.raises(ConfigError, match=r"ambiguous.*train\.batch.*eval\.batch"):
        apply_overrides(Config(), ["batch=4"])


def test_unknown_keys_and_sections_get_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'epoch'\. Did you mean 'epochs'"):
        apply_overrides(Config(), ["epoch=3"])
    with pytest.raises(ConfigError, match=r"unknown config section 'trian'.*Did you mean 'train'"):
        apply_overrides(Config(), ["trian.epochs=3"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides(Config(), ["epochs"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.head=decoupeld",
            r"model\.head: 'decoupeld' is not one of decoupled, coupled\. Did you mean 'decoupled'",
        ),
        ("train.assigner=simot", r"train\.assigner: 'simot' is not one of .*Did you mean 'simota'"),
        ("amp=fp61", r"train\.amp: 'fp61' is not one of auto, fp16, bf16, off, fp32\. Did you mean 'fp16'"),
        ("data.cache=disc", r"data\.cache: 'disc' is not one of none, ram, disk\. Did you mean 'disk'"),
    ],
)
def test_choice_values_are_checked_when_the_config_is_built(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), [override])


def test_yaml_words_that_read_as_booleans_stay_words():
    # YAML 1.1 reads `off` as False; an override keeps the word, a file asks for quotes
    assert apply_overrides(Config(), ["amp=off"]).train.amp == "off"
    assert apply_overrides(Config(), ["train.name='my run'"]).train.name == "my run"
    with pytest.raises(ConfigError, match=r"train\.amp: expected a word, got False; quote it"):
        from_dict(Config, {"train": {"amp": False}})


def test_a_value_far_from_every_choice_gets_no_suggestion():
    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), ["train.assigner=hungarian"])
    assert "Did you mean" not in str(info.value)


def test_choices_are_checked_on_every_way_of_building_a_section():
    with pytest.raises(ConfigError, match=r"model\.head"):
        ModelConfig(head="coupledd")
    with pytest.raises(ConfigError, match=r"train\.amp"):
        dataclasses.replace(TrainConfig(), amp="half")
    with pytest.raises(ConfigError, match=r"train\.assigner"):
        with_changes(TrainConfig(), assigner="otaa")
    with pytest.raises(ConfigError, match=r"export\.layout"):
        ExportConfig(layout="onnx")
    with pytest.raises(ConfigError, match=r"data\.cache"):
        from_dict(Config, {"data": {"cache": "ssd"}})


def test_a_yaml_file_with_a_bad_choice_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: yolox-nano\ntrain:\n  assigner: simota2021\n")
    with pytest.raises(
        ConfigError, match=r"run\.yaml: train\.assigner: 'simota2021'.*Did you mean 'simota-2021'"
    ):
        load_config(path)
    path.write_text("model:\n  name: yolox-nano\ntrain:\n  epochs: 5\n")
    config = load_config(path, ["epochs=7"])
    assert (config.model.name, config.train.epochs) == ("yolox-nano", 7)


def test_every_choice_of_every_field_builds():
    for key, values in CHOICES.items():
        section, name = key.split(".")
        for value in values:
            if section == "export":
                assert ExportConfig(**{name: value}).layout == value
            else:
                assert getattr(getattr(apply_overrides(Config(), [f"{key}={value}"]), section), name) == value


def test_assigner_choices_are_the_registered_assigners():
    assert sorted(CHOICES["train.assigner"]) == available()


def test_to_dict_round_trips():
    config = apply_overrides(Config(), ["train.input_size=320", "train.freeze=[backbone.backbone]"])
    assert from_dict(Config, to_dict(config)) == config


def test_eval_input_size_rule():
    assert eval_input_size(Config(), 640) == (640, 640)
    assert eval_input_size(apply_overrides(Config(), ["train.input_size=320"]), 640) == (320, 320)
    config = apply_overrides(Config(), ["train.input_size=320", "eval.input_size=[416, 480]"])
    assert eval_input_size(config, 640) == (416, 480)
    assert EvalConfig().input_size is None
