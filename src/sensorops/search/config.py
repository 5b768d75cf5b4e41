"""Typed, strict configuration of the architecture and hyperparameter search (``search`` params).

Built with the project's one config layer (:func:`sensorops.config_validation.parse`): an unknown
key, an unknown architecture or an inverted range is an error naming the dotted key, raised
before the study is opened and before any trial trains.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from sensorops.architectures import ARCHITECTURES
from sensorops.config_validation import (
    ConfigError,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictModel,
    parse,
)

SAMPLERS: tuple[str, ...] = ("tpe", "nsga2", "random")
PRUNERS: tuple[str, ...] = ("median", "none")
PROGRESS_MODES: tuple[str, ...] = ("auto", "always", "never")

ArchitectureName = Literal[ARCHITECTURES]  # type: ignore[valid-type]


class SearchConfigError(ConfigError):
    """A search parameter is unknown or has an invalid value (the message names the key)."""


class IntRange(StrictModel):
    """An integer range ``[low, high]`` sampled on a grid of ``step`` (or log-uniformly)."""

    low: StrictInt = Field(ge=1)
    high: StrictInt = Field(ge=1)
    step: StrictInt = Field(1, ge=1)
    log: StrictBool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"low must be <= high; got low={self.low}, high={self.high}")
        if self.log and self.step != 1:
            raise ValueError(f"log=true needs step=1; got step={self.step}")
        return self

    def values(self) -> list[int]:
        """Every value the range can give (for checks; ranges here are small)."""
        return list(range(self.low, self.high + 1, self.step))


class FloatRange(StrictModel):
    """A float range ``[low, high]``, uniform or log-uniform."""

    low: StrictFloat
    high: StrictFloat
    log: StrictBool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"low and high must be finite; got low={self.low}, high={self.high}")
        if self.low > self.high:
            raise ValueError(f"low must be <= high; got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0; got low={self.low}")
        return self


class ArchitectureSpace(StrictModel):
    """Depth and width of one architecture family."""

    hidden: IntRange
    """Width: LSTM units, conv channels or transformer d_model."""
    layers: IntRange
    """Depth: LSTM layers, residual blocks or encoder layers."""
    heads: list[StrictInt] | None = None
    """Transformer attention heads (each must divide every sampled ``hidden``); others: null."""


class SearchSpace(StrictModel):
    """What a trial samples; the rest of the training config comes from ``training.trainer``."""

    architectures: dict[ArchitectureName, ArchitectureSpace]
    dropout: FloatRange
    lr: FloatRange


class StudyConfig(StrictModel):
    """The Optuna study and its storage."""

    name: str = "sensorops-search"
    """Study name in the storage; the same name resumes the same study."""
    storage: str | None = None
    """An RDB URL (``postgresql+psycopg://user@host/db`` on a team server); null = sqlite at
    ``storage_path``."""
    storage_path: str = "optuna.db"
    """The sqlite file used when ``storage`` is null (relative = in the project, next to mlflow.db)."""
    sampler: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]
    """``tpe`` (multi-objective TPE), ``nsga2`` or ``random``."""
    seed: StrictInt = Field(0, ge=0)
    heartbeat_interval_s: StrictInt = Field(10, ge=1)
    """Running trials beat this often; a trial whose process died is failed and re-queued."""
    grace_period_s: StrictInt = Field(30, ge=1)
    """A running trial without a heartbeat for this long is considered dead."""


class BudgetConfig(StrictModel):
    """How much the search may spend; the study stops at the first limit reached."""

    n_trials: StrictInt = Field(12, ge=1)
    """Finished trials (complete or pruned) the study should hold; a resumed study runs only the rest."""
    timeout_s: StrictFloat | None = Field(540.0, gt=0)
    """Wall-clock limit of this invocation (null: none); a trial in flight finishes."""
    steps_per_trial: StrictInt = Field(150, ge=1)
    """Optimizer steps of each trial (``training.trainer.loop.max_steps``)."""


class PrunerConfig(StrictModel):
    """Early pruning on validation loss (reported after every validation pass)."""

    kind: Literal[PRUNERS] = "median"  # type: ignore[valid-type]
    n_startup_trials: StrictInt = Field(3, ge=0)
    """Finished trials before pruning starts."""
    n_warmup_steps: StrictInt = Field(0, ge=0)
    """Optimizer steps of a trial before it can be pruned."""


class ObjectivesConfig(StrictModel):
    """How the size and latency objectives are measured on each completed trial's ONNX model."""

    opset: StrictInt = 20
    latency_warmup: StrictInt = Field(10, ge=0)
    latency_iters: StrictInt = Field(100, ge=5)
    intra_op_threads: StrictInt = Field(1, ge=0)
    """ONNX Runtime threads for the latency measurement (1: comparable on a shared machine)."""
    accuracy_tolerance: StrictFloat = Field(0.0, ge=0.0, le=1.0)
    """The chosen trial: the fastest Pareto trial within this much of the best validation accuracy."""


class TrialPoint(StrictModel):
    """A fixed configuration to evaluate first (``search.enqueue``)."""

    architecture: ArchitectureName
    hidden: StrictInt = Field(ge=1)
    layers: StrictInt = Field(ge=1)
    dropout: StrictFloat
    lr: StrictFloat = Field(gt=0)
    heads: StrictInt | None = None


class SearchConfig(StrictModel):
    """Everything a search needs (``search`` parameters)."""

    study: StudyConfig = Field(default_factory=StudyConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    space: SearchSpace
    objectives: ObjectivesConfig = Field(default_factory=ObjectivesConfig)
    enqueue_default: StrictBool = True
    """Trial 0 evaluates the configuration of ``training.trainer`` (when it lies in the space)."""
    enqueue: list[TrialPoint] = Field(default_factory=list)
    """Further fixed configurations evaluated before the sampler takes over."""
    output_dir: str = "data/06_models/search"
    """Per-trial run directories (checkpoints, ONNX model)."""
    progress_bar: Literal[PROGRESS_MODES] = "auto"  # type: ignore[valid-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SearchConfig:
        cfg = parse("search", cls, data, error=SearchConfigError)
        check_space(cfg)
        return cfg


def check_space(cfg: SearchConfig) -> None:
    """Cross-field checks of the space, each naming its key.

    Raises:
        SearchConfigError: no architecture; transformer heads missing or not dividing every
            sampled width; an enqueued point outside the space.
    """
    space = cfg.space
    if not space.architectures:
        raise SearchConfigError(
            f"search.space.architectures is empty; give at least one of {list(ARCHITECTURES)}"
        )
    for name, arch in space.architectures.items():
        key = f"search.space.architectures.{name}"
        if name != "transformer":
            if arch.heads is not None:
                raise SearchConfigError(
                    f"{key}.heads is for the transformer only; got {arch.heads}"
                )
            continue
        if not arch.heads:
            raise SearchConfigError(
                f"{key}.heads must list at least one head count; got {arch.heads}"
            )
        bad = [(h, w) for h in arch.heads for w in arch.hidden.values() if h < 1 or w % h or w % 2]
        if bad:
            h, w = bad[0]
            raise SearchConfigError(
                f"{key}.hidden gives width {w}, which heads={h} does not divide (or is odd); "
                f"make hidden.low and hidden.step multiples of every head count and of 2"
            )
    for i, point in enumerate(cfg.enqueue):
        problem = point_problem(space, point)
        if problem:
            raise SearchConfigError(f"search.enqueue.{i}: {problem}")


def point_problem(space: SearchSpace, point: TrialPoint) -> str | None:
    """Why ``point`` lies outside ``space`` (``None`` when it lies inside)."""
    arch = space.architectures.get(point.architecture)
    if arch is None:
        return (
            f"architecture {point.architecture!r} is not in search.space.architectures "
            f"{list(space.architectures)}"
        )
    checks: list[tuple[str, Any, bool]] = [
        ("hidden", point.hidden, _in_int(arch.hidden, point.hidden)),
        ("layers", point.layers, _in_int(arch.layers, point.layers)),
        ("dropout", point.dropout, space.dropout.low <= point.dropout <= space.dropout.high),
        ("lr", point.lr, space.lr.low <= point.lr <= space.lr.high),
    ]
    if arch.heads:
        checks.append(("heads", point.heads, point.heads in arch.heads))
    for key, value, ok in checks:
        if not ok:
            return f"{key}={value!r} lies outside the search space of {point.architecture}"
    return None


def _in_int(r: IntRange, value: int) -> bool:
    return r.low <= value <= r.high and (r.log or (value - r.low) % r.step == 0)
