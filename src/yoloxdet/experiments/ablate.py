"""Ablations: train named variants under one budget, seed and data order, and report how they compare.

A variant is a name plus config overrides (``model.head=coupled``, ``train.assigner=single``, ...). Every
variant is trained by :func:`yoloxdet.engine.session.train` (the only training loop) from the same base
config, so the seed, data order, schedule and budget are identical and only the overrides differ. The report
is a table (``summary.md``, ``summary.csv``, ``summary.json``) and one PNG per metric with every variant's
curve against the iteration.

The default list is the YOLOX roadmap (paper Table 2, reference §9.2) as far as this framework can express it:
anchor-based vs anchor-free is not an option here (every head is anchor-free), so that step is absent.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from yoloxdet.config import (
    DEFAULT_HEAD,
    HEAD_KINDS,
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
)
from yoloxdet.data.checks import checked_dataset
from yoloxdet.data.spec import load_dataset_spec
from yoloxdet.engine.session import train
from yoloxdet.engine.trainer import Callback, LossFn, Trainer, yolox_loss_fn
from yoloxdet.io import write_bytes_atomic, write_figure_atomic

logger = logging.getLogger(__name__)

NO_STRONG_AUG = ("augment.mosaic_prob=0.0", "augment.enable_mixup=false")
STRONG_AUG = ("augment.mosaic_prob=1.0", "augment.enable_mixup=true")
DECOUPLED = f"model.head={DEFAULT_HEAD}"
COUPLED = f"model.head={HEAD_KINDS[1]}"  # the YOLOv3-style head
LOSS_TERMS = ("total", "iou", "obj", "cls", "l1")
EVAL_METRICS = ("AP", "AP50")
# fractions of the official 300-epoch schedule, kept when an iteration budget sets the epoch count
WARMUP_FRACTION, NO_AUG_FRACTION = 5 / 300, 15 / 300


@dataclass(frozen=True)
class Variant:
    """One entry of the variants YAML: ``name``, config ``overrides`` (``key=value`` strings) and a note."""

    name: str
    overrides: tuple[str, ...] = ()
    description: str = ""


DEFAULT_VARIANTS: tuple[Variant, ...] = (
    Variant(
        "baseline-coupled-single",
        (COUPLED, "train.assigner=single", *NO_STRONG_AUG),
        "YOLOv3-style coupled head, one positive per object, no mosaic/mixup",
    ),
    Variant("+decoupled", (DECOUPLED, "train.assigner=single", *NO_STRONG_AUG), "decoupled head"),
    Variant("+strong-aug", (DECOUPLED, "train.assigner=single", *STRONG_AUG), "mosaic and mixup on"),
    Variant(
        "+multi-positives",
        (DECOUPLED, "train.assigner=center3x3", *STRONG_AUG),
        "the 3x3 centre cells are positives",
    ),
    Variant("+simota", (DECOUPLED, "train.assigner=simota", *STRONG_AUG), "SimOTA (the YOLOX default)"),
    Variant(
        "simota-2021",
        (DECOUPLED, "train.assigner=simota-2021", *STRONG_AUG),
        "SimOTA as in the 2021 release (extra)",
    ),
    Variant("ota", (DECOUPLED, "train.assigner=ota", *STRONG_AUG), "OTA with Sinkhorn (extra)"),
)


@dataclass(frozen=True)
class Budget:
    """Either a fixed number of optimizer steps (rounded up to whole epochs) or a wall-clock limit per
    variant."""

    iterations: int = 0
    minutes: float = 0.0

    def __post_init__(self) -> None:
        if (self.iterations > 0) == (self.minutes > 0):
            raise ConfigError("give exactly one budget: iterations > 0 or minutes > 0")


@dataclass
class VariantResult:
    """What one variant's run produced: final and best metrics, time, and the per-iteration logs."""

    name: str
    run_dir: Path
    wall_s: float
    iterations: int
    steps: list[dict[str, float]] = field(default_factory=list)  # one row per optimizer step
    evals: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation, with its iteration
    completed: bool = True  # False: interrupted (SIGINT/SIGTERM) before the budget was spent

    def final(self, key: str) -> float:
        return self.evals[-1].get(key, math.nan) if self.evals else math.nan

    def best(self, key: str) -> float:
        values = [row[key] for row in self.evals if key in row]
        return max(values) if values else math.nan

    def assign_ms(self) -> float:
        values = [row["assign_ms"] for row in self.steps if "assign_ms" in row]
        return statistics.fmean(values) if values else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "variant": self.name,
            "AP50:95": self.final("AP"),
            "AP50": self.final("AP50"),
            "best AP50:95": self.best("AP"),
            "iterations": self.iterations,
            "wall s": round(self.wall_s),
            "assign ms/iter": self.assign_ms(),
            "completed": self.completed,
            "run": str(self.run_dir),
        }


# ---------------------------------------------------------------------------------------------- variants YAML
def _override_strings(raw: Any, where: str) -> tuple[str, ...]:
    """Overrides as ``key=value`` strings from a mapping (values as YAML) or a list of strings."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return tuple(f"{key}={json.dumps(value)}" for key, value in raw.items())  # JSON is valid YAML
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ConfigError(f"{where}.overrides: expected a mapping (key: value) or a list of 'key=value' strings")


def parse_variants(data: Any, source: str = "<variants>") -> list[Variant]:
    """Variants from parsed YAML: ``{"variants": [{"name": ..., "overrides": {...}}, ...]}`` or the bare
    list."""
    entries = data.get("variants") if isinstance(data, Mapping) else data
    if isinstance(data, Mapping) and set(data) != {"variants"}:
        extra = sorted(set(data) - {"variants"})
        raise ConfigError(f"{source}: unknown top-level key(s) {extra}; expected only 'variants'")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{source}: expected a non-empty list of variants (each with 'name' and 'overrides')"
        )
    variants: list[Variant] = []
    for i, entry in enumerate(entries):
        where = f"variants[{i}]"
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ConfigError(f"{source}: {where} must be a mapping with a 'name'")
        try:
            raw = from_dict(Variant, {k: v for k, v in entry.items() if k != "overrides"}, prefix=where)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        if not raw.name or "/" in raw.name or "\\" in raw.name or raw.name.startswith("."):
            raise ConfigError(f"{source}: {where}.name '{raw.name}' must be usable as a folder name")
        variants.append(Variant(raw.name, _override_strings(entry.get("overrides"), where), raw.description))
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: variant names must be unique; repeated: {duplicates}")
    return variants


def load_variants(path: str | Path | None) -> list[Variant]:
    """Variants from a YAML file; the roadmap (:data:`DEFAULT_VARIANTS`) when ``path`` is None."""
    if path is None:
        return list(DEFAULT_VARIANTS)
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read variants: {exc}") from exc
    return parse_variants(data, str(path))


def variants_yaml(variants: Sequence[Variant]) -> str:
    """The YAML that :func:`load_variants` reads back (``yoloxdet ablate --print-variants``)."""
    entries = [
        {
            "name": v.name,
            "description": v.description,
            "overrides": {k: yaml.safe_load(val) for k, val in (o.split("=", 1) for o in v.overrides)},
        }
        for v in variants
    ]
    return yaml.safe_dump({"variants": entries}, sort_keys=False)


# ---------------------------------------------------------------------------------------------- configs
def train_iterations_per_epoch(config: Config) -> int:
    """Optimizer steps per epoch of the configured dataset (the readable training images, single process)."""
    spec = load_dataset_spec(config.data.dataset)
    images = len(checked_dataset(spec, "train", cache_dir=Path(config.train.output_dir) / ".data-checks"))
    return math.ceil(images / config.train.batch)


def budget_overrides(config: Config, budget: Budget) -> list[str]:
    """Overrides that put ``budget`` into the schedule: epochs (with warmup and no-aug scaled to the official
    fractions) for an iteration budget, ``train.max_minutes`` for a time budget."""
    if budget.minutes > 0:
        return [f"train.max_minutes={budget.minutes}"]
    epochs = max(1, math.ceil(budget.iterations / train_iterations_per_epoch(config)))
    return [
        f"train.epochs={epochs}",
        f"train.warmup_epochs={epochs * WARMUP_FRACTION}",
        f"train.no_aug_epochs={round(epochs * NO_AUG_FRACTION)}",
        f"train.eval_interval={max(1, epochs // 8)}",
    ]


def base_config(
    dataset: str | Path,
    budget: Budget,
    overrides: Sequence[str] = (),
    *,
    model: str = "yolox-nano",
    size: int = 320,
    seed: int = 0,
    output_dir: str | Path = "runs/ablate",
) -> Config:
    """The config every variant starts from: dataset, model, size, seed, budget, then ``overrides`` (all
    variants)."""
    config = load_config(
        None,
        [
            f"data.dataset={dataset}",
            f"model.name={model}",
            f"train.input_size={size}",
            f"eval.input_size={size}",
            f"train.seed={seed}",
            f"train.output_dir={output_dir}",
            "train.eval_interval=1",
            *overrides,
        ],
    )
    # the user's overrides come last so that they win over the budget's defaults (e.g. eval_interval)
    return apply_overrides(apply_overrides(config, budget_overrides(config, budget)), overrides)


def variant_config(base: Config, variant: Variant) -> Config:
    try:
        config = apply_overrides(base, variant.overrides)
    except ConfigError as exc:
        raise ConfigError(f"variant '{variant.name}': {exc}") from exc
    return apply_overrides(config, [f"train.name={variant.name}"])


# ---------------------------------------------------------------------------------------------- running
class IterationLog(Callback):
    """Per-iteration loss terms, lr and assignment time, and every evaluation at its iteration.

    Its :meth:`loss_fn` (given to ``train(loss_fn=...)``) times the assignment (:func:`yolox_loss_fn`
    ``on_assign_s``); the timer synchronises CUDA, which is why only ablations ask for it.
    """

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.evals: list[dict[str, float]] = []
        self._assign_s = 0.0
        self.completed = False  # False when a signal stopped the run before its budget

    def _add_assign(self, seconds: float) -> None:
        self._assign_s += seconds

    def loss_fn(self, assigner: str) -> LossFn:
        """The official loss with ``assigner``, adding each assignment's wall time to this log."""
        return yolox_loss_fn(assigner, on_assign_s=self._add_assign)

    def on_train_start(self, trainer: Trainer) -> None:
        trainer.log_interval = 1  # a row of losses per step (the assignment timing synchronises anyway)

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        row = {"iteration": float(trainer.state.iteration), **logs, "assign_ms": self._assign_s * 1e3}
        self.steps.append(row)
        self._assign_s = 0.0

    def on_train_end(self, trainer: Trainer) -> None:
        config, state = trainer.config, trainer.state
        budget_spent = config.max_minutes > 0 and trainer.position() >= trainer.schedule.total_iters
        early_stop = 0 < config.patience <= state.evals_since_best
        self.completed = state.epoch >= config.epochs or budget_spent or early_stop

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        metrics = {k: logs[k] for k in EVAL_METRICS if k in logs}
        if metrics:
            self.evals.append(
                {"iteration": float(trainer.state.iteration), "epoch": float(epoch + 1), **metrics}
            )


def run_variant(base: Config, variant: Variant, *, progress: bool = False) -> VariantResult:
    config = variant_config(base, variant)
    log = IterationLog()
    logger.info("ablation variant %s: %s", variant.name, " ".join(variant.overrides) or "(no overrides)")
    start = time.monotonic()
    state, run_dir = train(
        config, progress=progress, extra_callbacks=(log,), loss_fn=log.loss_fn(config.train.assigner)
    )
    result = VariantResult(
        variant.name,
        run_dir,
        time.monotonic() - start,
        state.iteration,
        log.steps,
        log.evals,
        completed=log.completed,
    )
    write_csv(run_dir / "iterations.csv", log.steps)
    write_csv(run_dir / "evaluations.csv", log.evals)
    return result


def run_ablation(base: Config, variants: Sequence[Variant], *, progress: bool = False) -> list[VariantResult]:
    """Train every variant in turn from ``base`` and write the report into ``base.train.output_dir``."""
    for variant in variants:  # fail on a bad override before spending time on the first variant
        variant_config(base, variant)
    out_dir = Path(base.train.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / "variants.yaml", variants_yaml(variants).encode())
    results: list[VariantResult] = []
    for variant in variants:
        results.append(run_variant(base, variant, progress=progress))
        write_report(results, out_dir)  # a partial report survives an interrupted ablation
        if not results[-1].completed:
            logger.warning(
                "variant %s was interrupted: the ablation stops here (its report is partial)", variant.name
            )
            break
    return results


# ---------------------------------------------------------------------------------------------- report
def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buffer.getvalue().encode())
    return path


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = [c for c in rows[0] if c != "run"]

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving mean: per-iteration losses are too noisy to compare by eye."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_metric(results: Sequence[VariantResult], metric: str, path: Path) -> Path:
    """One PNG: ``metric`` against the iteration, one line per variant (evaluations as markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for result in results:
        rows = result.evals if metric in EVAL_METRICS else result.steps
        points = [(row["iteration"], row[metric]) for row in rows if metric in row]
        if not points:
            continue
        xs, ys = zip(*points)
        if metric in EVAL_METRICS:
            ax.plot(xs, ys, marker="o", label=result.name)
        else:
            ax.plot(xs, _smooth(list(ys), max(1, len(ys) // 25)), label=result.name)
    ax.set_xlabel("iteration")
    ax.set_ylabel(metric if metric in EVAL_METRICS else f"{metric} loss (moving mean)")
    ax.set_title(metric)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure_atomic(fig, path)
    plt.close(fig)
    return path


def write_report(results: Sequence[VariantResult], out_dir: str | Path) -> list[Path]:
    """``summary.md`` / ``.csv`` / ``.json`` and ``curve_<metric>.png`` for AP, AP50 and each loss term."""
    out_dir = Path(out_dir)
    rows = [r.summary() for r in results]
    paths = [out_dir / "summary.md", write_csv(out_dir / "summary.csv", rows), out_dir / "summary.json"]
    write_bytes_atomic(paths[0], markdown_table(rows).encode())
    plain = [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows
    ]
    write_bytes_atomic(paths[2], json.dumps(plain, indent=2).encode())
    for metric in (*EVAL_METRICS, *LOSS_TERMS):
        paths.append(plot_metric(results, metric, out_dir / f"curve_{metric}.png"))
    return paths
