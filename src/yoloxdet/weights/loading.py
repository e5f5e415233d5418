"""Weights: official Megvii checkpoints and ONNX exports, the release download cache, and our checkpoint
format.

Our format (``FORMAT``) is a plain dict that ``torch.load(weights_only=True)`` reads, never a pickled module::

    format   "yoloxdet/1"
    model    the model's state_dict
    info     CheckpointInfo as a dict (model name, class count and names, default input size, head)
    ...      anything passed as ``extra`` (e.g. the resolved run configuration)

``load_model`` also reads the trainer's checkpoints (``TRAIN_FORMAT``, written by ``engine.checkpoint``),
official ``.pth`` files (a dict with a ``"model"`` key, reference §5), official ``.onnx`` exports (BN folded,
see ``onnx_import``) and zoo names.
"""

from __future__ import annotations

import logging
import os
import pickle
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import DEFAULT_HEAD, HEAD_KINDS, Config, ConfigError, eval_input_size, from_dict
from ..io import atomic_path
from ..models.heads import prior_bias
from ..models.yolox import YOLOX
from ..models.zoo import RELEASE_URL, create_model, get_spec
from .coco_classes import COCO_CLASSES
from .onnx_import import import_onnx

__all__ = [
    "FORMAT",
    "CheckpointInfo",
    "WeightsDownloadError",
    "fetch_official",
    "load_model",
    "load_state_dict_into",
    "read_checkpoint",
    "save_checkpoint",
    "weights_cache_dir",
]

logger = logging.getLogger(__name__)

FORMAT = "yoloxdet/1"
TRAIN_FORMAT = "yoloxdet-train/1"  # the trainer's checkpoints (engine.checkpoint writes them)
DOWNLOAD_TIMEOUT_S = 10.0
_MAX_LISTED_KEYS = 8


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's weights mean: which zoo model, which classes, which default input size."""

    model_name: str  # zoo name, e.g. "yolox-nano"
    num_classes: int
    class_names: tuple[str, ...]
    input_size: tuple[int, int]  # (h, w) default inference size
    head: str = DEFAULT_HEAD

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @classmethod
    def default(
        cls,
        model_name: str,
        num_classes: int = 80,
        class_names: Sequence[str] | None = None,
        head: str = DEFAULT_HEAD,
    ) -> CheckpointInfo:
        """The zoo defaults: COCO names for 80 classes, ``class0..`` otherwise, the model's default size."""
        spec = get_spec(model_name)
        if class_names is None:
            class_names = (
                COCO_CLASSES
                if num_classes == len(COCO_CLASSES)
                else [f"class{i}" for i in range(num_classes)]
            )
        size = (spec.input_size, spec.input_size)
        return cls(spec.name, num_classes, tuple(str(n) for n in class_names), size, head)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointInfo:
        return cls(
            str(data["model_name"]),
            int(data["num_classes"]),
            tuple(str(n) for n in data["class_names"]),
            (int(data["input_size"][0]), int(data["input_size"][1])),
            str(data.get("head", DEFAULT_HEAD)),
        )


class WeightsDownloadError(FileNotFoundError):
    """An official release file could not be downloaded; the message says where to put it by hand."""


# ------------------------------------------------------------------------------------------------------------
# our format


def save_checkpoint(
    path: str | Path, model: nn.Module, info: CheckpointInfo, extra: dict | None = None
) -> None:
    """Write ``model``'s weights and ``info`` in our format, atomically (temp file in the same folder +
    rename)."""
    reserved = {"format", "model", "info"} & set(extra or {})
    if reserved:
        raise ValueError(f"extra may not override {sorted(reserved)}")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    save_atomic({"format": FORMAT, "model": state, "info": info.to_dict(), **(extra or {})}, path)


def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` through :func:`yoloxdet.io.atomic_path`: never a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict:
    """The raw dict of a checkpoint file (loaded on CPU with ``weights_only=True``); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: holds pickled objects other than tensors and plain containers (e.g. a whole "
            "module); refusing to unpickle it, save a state_dict instead"
        ) from exc
    except Exception as exc:  # zip and format errors come in many types
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first_line})"
        ) from exc
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, found {type(payload).__name__}")
    return payload


def _info_from_training(payload: Mapping[str, Any], path: Path) -> CheckpointInfo:
    try:
        config = from_dict(Config, payload.get("config") or {})
    except ConfigError as exc:
        raise ValueError(f"{path}: training checkpoint with a bad config ({exc})") from exc
    name = payload.get("model_name") or config.model.name
    if "class_names" not in payload:
        raise ValueError(f"{path}: training checkpoint without class names")
    names = tuple(payload["class_names"])
    info = CheckpointInfo.default(name, len(names), names, config.model.head)
    return replace(info, input_size=eval_input_size(config, get_spec(name).input_size))


# ------------------------------------------------------------------------------------------------------------
# state-dict loading


def _class_predictor_keys(model: nn.Module) -> set[str]:
    head = getattr(model, "head", None)
    predictors = {id(m) for m in head.class_predictors()} if hasattr(head, "class_predictors") else set()
    return {
        f"{name}.{param}"
        for name, module in model.named_modules()
        if id(module) in predictors
        for param, _ in module.named_parameters(recurse=False)
    }


def _reinit_class_predictor(conv: nn.Conv2d, num_classes: int) -> None:
    # PyTorch's default init plus the prior bias on the score channels, as in a freshly built head
    conv.reset_parameters()
    first_score = 0 if conv.out_channels == num_classes else conv.out_channels - num_classes - 1
    with torch.no_grad():
        conv.bias[first_score:].fill_(prior_bias())


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = len(keys) - _MAX_LISTED_KEYS
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def load_state_dict_into(model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "") -> None:
    """Copy ``state_dict`` into ``model``. Class-predictor tensors whose shapes differ (another class count)
    are left out and those predictors re-initialised, with a log message; any other missing, unexpected or
    mis-shaped key raises ValueError listing the keys."""
    target = model.state_dict()
    where = f"{source}: " if source else ""
    class_keys = _class_predictor_keys(model)
    missing = sorted(set(target) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(target))
    mismatched = sorted(
        k for k in set(target) & set(state_dict) if tuple(state_dict[k].shape) != tuple(target[k].shape)
    )
    bad_shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(target[k].shape)}"
        for k in mismatched
        if k not in class_keys
    ]
    problems = [
        f"{label}: {_listed(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", bad_shapes))
        if keys
    ]
    if problems:
        raise ValueError(f"{where}weights do not fit the model; " + "; ".join(problems))
    skipped = set(mismatched)
    merged = {k: (target[k] if k in skipped else state_dict[k]) for k in target}
    model.load_state_dict(merged, strict=True)
    if skipped:
        num_classes = int(model.head.num_classes)
        for conv in model.head.class_predictors():
            _reinit_class_predictor(conv, num_classes)
        logger.info(
            "%sclass count differs from the model's %d: re-initialised the class predictors (%s)",
            where,
            num_classes,
            ", ".join(sorted(skipped)),
        )


# ------------------------------------------------------------------------------------------------------------
# official release download


def weights_cache_dir() -> Path:
    """Where downloaded release weights live: ``$YOLOXDET_HOME/weights``, default
    ``~/.cache/yoloxdet/weights``."""
    home = os.environ.get("YOLOXDET_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "yoloxdet") / "weights"


def fetch_official(
    model_name: str,
    base_url: str = RELEASE_URL,
    cache_dir: str | Path | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """The official COCO release file of a zoo model, downloaded once into the cache (atomically).

    Raises:
        WeightsDownloadError: the URL could not be read (offline, timeout); says where to put the file by
            hand.
    """
    spec = get_spec(model_name)
    folder = Path(cache_dir) if cache_dir is not None else weights_cache_dir()
    dest = folder / spec.weights_file
    if dest.is_file():
        return dest
    url = base_url.rstrip("/") + "/" + spec.weights_file
    try:
        # 0o644: a shared cache should be readable by every user
        with (
            atomic_path(dest, mode=0o644) as tmp,
            open(tmp, "wb") as handle,
            urllib.request.urlopen(url, timeout=timeout) as response,
        ):
            while chunk := response.read(1 << 20):
                handle.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsDownloadError(
            f"could not download {url} ({reason}); download it elsewhere and put it at {dest}"
        ) from exc
    logger.info("downloaded %s -> %s", url, dest)
    return dest


# ------------------------------------------------------------------------------------------------------------
# load_model


def _resolve_source(source: str | Path, model_name: str | None) -> tuple[Path, str | None]:
    path = Path(source)
    if path.exists() or path.suffix:
        return path, model_name
    try:
        spec = get_spec(str(source))
    except KeyError:
        raise FileNotFoundError(
            f"{source}: no such file, and not a model name (see `yoloxdet models`)"
        ) from None
    return fetch_official(spec.name), spec.name


def _official_class_count(state_dict: Mapping[str, Tensor], path: Path) -> tuple[int, str]:
    if "head.cls_preds.0.weight" in state_dict:
        return int(state_dict["head.cls_preds.0.weight"].shape[0]), DEFAULT_HEAD
    if "head.preds.0.weight" in state_dict:
        return int(state_dict["head.preds.0.weight"].shape[0]) - 5, HEAD_KINDS[1]  # the coupled head
    raise ValueError(f"{path}: no YOLOX head weights (head.cls_preds.0.weight) in the state dict")


def _read_weights(path: Path, model_name: str | None) -> tuple[dict[str, Tensor], CheckpointInfo]:
    """State dict and info of the checkpoint as stored (before any change of class count)."""
    if path.suffix.lower() == ".onnx":
        if model_name is None:
            raise ValueError(
                f"{path}: an official ONNX file needs the model name (e.g. model_name='yolox-nano')"
            )
        model = import_onnx(path, model_name)
        return model.state_dict(), CheckpointInfo.default(model_name, model.num_classes)
    payload = read_checkpoint(path)
    if payload.get("format") == FORMAT:
        return payload["model"], CheckpointInfo.from_dict(payload["info"])
    if payload.get("format") == TRAIN_FORMAT:
        return payload["model"], _info_from_training(payload, path)
    state_dict = payload.get("model", payload)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise ValueError(f"{path}: no state dict (expected a dict of tensors under 'model')")
    if model_name is None:
        raise ValueError(f"{path}: an official checkpoint needs the model name (e.g. model_name='yolox-s')")
    num_classes, head = _official_class_count(state_dict, path)
    return dict(state_dict), CheckpointInfo.default(model_name, num_classes, head=head)


def load_model(
    source: str | Path,
    model_name: str | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> tuple[YOLOX, CheckpointInfo]:
    """A ready model from our checkpoint, a trainer checkpoint, an official ``.pth`` or ``.onnx`` (these two
    need ``model_name``) or a zoo name (the cached official COCO release, downloaded on first use).

    ``num_classes`` / ``class_names`` change the class count (re-initialising the class predictors) or rename
    the classes. Returns the model in eval mode on CPU and what its weights mean.
    """
    path, model_name = _resolve_source(source, model_name)
    state_dict, stored = _read_weights(path, model_name)
    if model_name is not None and get_spec(model_name).name != stored.model_name:
        raise ValueError(f"{path}: holds {stored.model_name} weights, not {get_spec(model_name).name}")
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for num_classes={num_classes}")
    target = (
        num_classes if num_classes is not None else (len(class_names) if class_names else stored.num_classes)
    )
    if class_names is None and target == stored.num_classes:
        class_names = stored.class_names
    info = CheckpointInfo.default(stored.model_name, target, class_names, stored.head)
    info = replace(info, input_size=stored.input_size)
    model = create_model(info.model_name, info.num_classes, info.head)
    load_state_dict_into(model, state_dict, str(path))
    return model.eval(), info
