"""Configuration: frozen dataclasses, YAML files and ``key=value`` overrides.

A run is described by one :class:`Config`. Defaults follow the official ``yolox_base.py`` (reference §4); a
YAML file or ``section.key=value`` overrides hold only the changes. Unknown keys, and values outside a field's
choices (:data:`CHOICES`), fail when the config is built, with a "did you mean" suggestion.

This module owns every default of the package: the training and evaluation settings below, the inference
thresholds (:class:`PredictConfig`, used by ``yoloxdet predict``, :class:`~yoloxdet.inference.api.Detector`
and export) and the lists of allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message says which and how to fix it."""


HEAD_KINDS = ("decoupled", "coupled")  # YOLOX's decoupled head; the YOLOv3-style coupled one for ablations
DEFAULT_HEAD = HEAD_KINDS[0]
# the allowed values of the fields that name a choice, checked whenever a section is built. The assigner names
# are those registered in yoloxdet.assign (tests/test_config.py checks that the two agree).
CHOICES: dict[str, tuple[str, ...]] = {
    "model.head": HEAD_KINDS,
    "data.cache": ("none", "ram", "disk"),  # decoded-image cache
    "train.amp": ("auto", "fp16", "bf16", "off", "fp32"),  # "off" and "fp32" both mean full precision
    "train.assigner": ("simota", "simota-2021", "ota", "single", "center3x3"),
    "export.layout": ("decoded", "raw", "nms"),  # what an exported graph returns (see yoloxdet.export)
    # the clock of train.max_minutes: real time, or CPU time of the training process and its workers
    "train.budget_clock": ("wall", "cpu"),
    # "qat": quantisation-aware fine-tuning of train.weights for the int8 export (see engine/qat.py)
    "train.quant": ("none", "qat"),
}
# test-time flips of predict and val: the views of yoloxdet.inference.tta.TTA_VIEWS (tests/test_tta.py checks
# that the two agree)
TTA_MODES = ("none", "hflip", "flips")


def _suggest(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def check_choice(where: str, value: Any) -> None:
    """Raise :class:`ConfigError` if ``value`` is not one of ``CHOICES[where]``, suggesting the closest
    one."""
    allowed = CHOICES[where]
    if value not in allowed:
        raise ConfigError(
            f"{where}: {value!r} is not one of {', '.join(allowed)}.{_suggest(str(value), allowed)}"
        )


class _Checked:
    """Mixin of the config sections: check the fields listed in :data:`CHOICES` on every construction
    (``from_dict``, ``replace``, direct calls), so a typo fails before any data or model work."""

    SECTION = ""

    def __post_init__(self) -> None:
        for field_ in fields(self):  # type: ignore[arg-type]
            where = f"{self.SECTION}.{field_.name}"
            if where in CHOICES:
                check_choice(where, getattr(self, field_.name))


@dataclass(frozen=True)
class ModelConfig(_Checked):
    SECTION = "model"
    name: str = "yolox-s"  # a key of the model zoo, see `yoloxdet models`
    num_classes: int = 80
    head: str = DEFAULT_HEAD  # see HEAD_KINDS


@dataclass(frozen=True)
class AugmentConfig:
    """Strong augmentation (reference §4, §4.5). ``None`` means "the model's default" (nano/tiny differ)."""

    mosaic_prob: float | None = None  # 1.0; nano 0.5
    mixup_prob: float = 1.0
    enable_mixup: bool | None = None  # True; nano/tiny False
    hsv_prob: float = 1.0
    hsv_gains: tuple[int, int, int] = (5, 30, 30)  # official augment_hsv(hgain, sgain, vgain)
    flip_prob: float = 0.5
    degrees: float = 10.0
    translate: float = 0.1
    mosaic_scale: tuple[float, float] | None = None  # (0.1, 2.0); nano/tiny (0.5, 1.5)
    mixup_scale: tuple[float, float] = (0.5, 1.5)
    shear: float = 2.0
    # Not official, off by default: views equally valid for overhead imagery (aerial, microscopy).
    vflip_prob: float = 0.0  # vertical flip
    rot90_prob: float = 0.0  # rotation by a random multiple of 90 degrees


@dataclass(frozen=True)
class DataConfig(_Checked):
    SECTION = "data"
    dataset: str = ""  # path to a dataset description YAML (format, train/val locations, class names)
    workers: int | None = None  # None: scaled to the CPUs
    cache: str = "none"  # see CHOICES


def parse_lr_scales(entries: Iterable[str]) -> dict[str, float]:
    """``["backbone.backbone=0.1", ...]`` (``train.lr_scales``) as ``{module path: factor}``."""
    scales: dict[str, float] = {}
    for entry in entries:
        path, sep, factor = str(entry).partition("=")
        try:
            value = float(factor)
        except ValueError:
            value = -1.0
        if not sep or not path.strip() or value < 0:
            raise ConfigError(
                f"train.lr_scales: {entry!r} is not MODULE=FACTOR with a factor >= 0 "
                "(e.g. backbone.backbone=0.1)"
            )
        scales[path.strip()] = value
    return scales


@dataclass(frozen=True)
class TrainConfig(_Checked):
    SECTION = "train"
    epochs: int = 300
    batch: int = 64  # global batch (all processes)
    accumulate: int = 1  # gradient accumulation steps
    lr_per_image: float = 0.01 / 64
    warmup_epochs: float = 5
    warmup_lr: float = 0.0
    min_lr_ratio: float = 0.05
    no_aug_epochs: int = 15
    weight_decay: float = 5e-4
    momentum: float = 0.9
    ema: bool = True
    ema_ramp: float = (
        2000.0  # updates until the EMA decay nears its 0.9998 (official 2000); shorter for short runs
    )
    input_size: tuple[int, int] | None = None  # (h, w); None: the model's default
    multiscale_range: int = 5  # sizes 32 * randint(s/32 - r, s/32 + r); 0 disables
    multiscale_interval: int = 10  # iterations between size draws
    eval_interval: int = 10
    patience: int = 0  # early stopping on val AP, in evaluations; 0 disables
    seed: int = 0
    amp: str = "auto"  # see CHOICES: "auto" is bf16 where the GPU has it natively, else fp16; CUDA only
    device: str = "auto"
    sync_bn: bool = False
    assigner: str = "simota"  # see CHOICES and yoloxdet.assign
    weights: str = ""  # initial weights (.pth / .onnx / our .pt / a zoo name)
    output_dir: str = "runs"
    name: str = ""  # run folder name; default derived from the model and time
    max_minutes: float = 0.0  # time budget on budget_clock; 0 disables. The lr schedule ends at the deadline.
    # "wall": real minutes; "cpu": CPU minutes of the training process tree (fair on a shared machine:
    # 10 minutes of 2 busy cores = 20 CPU minutes), see engine/budget_clock.py
    budget_clock: str = "wall"
    precise_bn: int = (
        0  # re-estimate BN statistics on this many training batches before each evaluation (not official)
    )
    freeze: tuple[
        str, ...
    ] = ()  # module paths held fixed (e.g. backbone.backbone), see engine/freeze.py; not official
    channels_last: bool = (
        True  # NHWC model and images: faster convolutions (oneDNN on CPU, tensor cores); same maths
    )
    deterministic: bool = False  # deterministic algorithms, cuDNN benchmark off: exact reruns on GPU, slower
    # layer-wise lr for fine-tuning (not official): "MODULE=FACTOR" entries, the lr of the parameters under
    # MODULE times FACTOR, e.g. [backbone.backbone=0.1]; see engine/optim.py
    lr_scales: tuple[str, ...] = ()
    quant: str = "none"  # see CHOICES; "qat" fine-tunes train.weights under simulated int8 (engine/qat.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_lr_scales(self.lr_scales)  # a malformed entry fails when the config is built


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation (mAP): a low score threshold keeps the whole precision-recall curve (official test
    settings)."""

    conf_threshold: float = 0.001
    nms_iou_threshold: float = 0.65
    class_agnostic: bool = False
    input_size: tuple[int, int] | None = None  # None: the training input size, else the model's default
    batch: int = 8


@dataclass(frozen=True)
class PredictConfig:
    """Inference defaults (``yoloxdet predict``, ``Detector``, ``export --layout nms``): the official
    demo's."""

    conf_threshold: float = 0.25
    nms_iou_threshold: float = 0.45
    batch: int = 8  # images per forward pass
    tile_overlap: float = (
        0.25  # with tiling (large images): overlap of neighbouring tiles, a fraction of a tile
    )
    tta: str = "none"  # test-time flips (predict and val), see TTA_MODES


@dataclass(frozen=True)
class ExportConfig(_Checked):
    """Export defaults (``yoloxdet export``, ``yoloxdet.export``)."""

    SECTION = "export"
    layout: str = "decoded"  # see CHOICES
    opset: int = 18  # the dynamo exporter's native opset; onnxruntime >= 1.14 runs it fully
    calib_images: int = 300  # int8 calibration images (`export --int8`, `bench --formats`)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def eval_input_size(config: Config, model_default: int) -> tuple[int, int]:
    """The evaluation input size (h, w): ``eval.input_size``, else the training size, else the model's
    default."""
    size = config.eval.input_size or config.train.input_size or (model_default, model_default)
    return (int(size[0]), int(size[1]))


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated field type (tuples from lists, floats from ints)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            value = [value, value]  # a single size means square
        if args and args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, args[0], where) for v in value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if isinstance(value, bool):  # YAML 1.1 reads off/on/yes/no as booleans
            raise ConfigError(f"{where}: expected a word, got {value!r}; quote it in YAML (e.g. '\"off\"')")
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise with a suggestion."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(f"unknown config key '{where}'.{_suggest(key, names)}")
        kwargs[key] = _coerce(value, hints[key], where)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-Python view (tuples as lists) suitable for YAML, JSON and checkpoints."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML). A bare ``key=value`` is looked up in
    every section and must be unambiguous, so ``epochs=10`` means ``train.epochs=10``."""
    data = to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        section, _, name = key.partition(".")
        if not name:
            name = section
            owners = [s for s, sub in data.items() if name in sub]
            if len(owners) != 1:
                if owners:
                    raise ConfigError(
                        f"'{name}' is ambiguous: write one of {[f'{o}.{name}' for o in owners]}"
                    )
                every = [f"{s}.{k}" for s, sub in data.items() for k in sub] + [
                    k for sub in data.values() for k in sub
                ]
                raise ConfigError(f"unknown config key '{name}'.{_suggest(name, every)}")
            section = owners[0]
        if section not in data:
            raise ConfigError(f"unknown config section '{section}'.{_suggest(section, data)}")
        if name not in data[section]:
            raise ConfigError(f"unknown config key '{section}.{name}'.{_suggest(name, data[section])}")
        # a text field keeps the text as written when YAML reads it as something else (amp=off as False)
        text_field = isinstance(data[section][name], str) and not isinstance(value, str)
        data[section][name] = raw if text_field else value
    return from_dict(Config, data)


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``."""
    config = Config()
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping of sections (model, data, train, ...)")
        try:
            config = from_dict(Config, data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return apply_overrides(config, overrides)


def with_changes(config: T, **changes: Any) -> T:
    """``dataclasses.replace`` that names the unknown field instead of a bare TypeError."""
    names = {f.name for f in fields(config)}  # type: ignore[arg-type]
    for key in changes:
        if key not in names:
            raise ConfigError(f"unknown config key '{key}'.{_suggest(key, names)}")
    return replace(config, **changes)  # type: ignore[type-var]
