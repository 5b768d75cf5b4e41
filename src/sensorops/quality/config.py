"""Typed configuration of the three-tier data-quality gate (built from ``params:data_quality``).

Every model is strict (``extra="forbid"``): a misspelled YAML key is an error that names the key
and lists the valid ones, never a silently ignored threshold.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sensorops.config_validation import ConfigError, StrictModel, parse

Action = Literal["fail", "warn"]
ACTIONS: tuple[str, ...] = ("fail", "warn")
STAGES: tuple[str, ...] = ("raw", "model_input")
TIER_NAMES: dict[int, str] = {1: "basic_statistics", 2: "business_rules", 3: "separability"}


class DataQualityConfigError(ConfigError):
    """``params:data_quality`` is malformed; the message names the key and the valid options."""


_Strict = StrictModel


class BasicStatisticsConfig(_Strict):
    """Tier 1: basic statistics of the channels and classes."""

    action: Action = "fail"
    max_missing_rate: float = Field(0.05, ge=0.0, le=1.0)
    """Largest allowed fraction of missing (NaN) values per channel."""
    max_abs_correlation: float = Field(0.98, gt=0.0, le=1.0)
    """Largest allowed |Pearson r| between two different channels (duplicated sensors)."""
    min_channel_std: float = Field(1e-8, ge=0.0)
    """Smallest allowed standard deviation per channel (stuck sensors)."""
    value_range_mostly: float = Field(1.0, gt=0.0, le=1.0)
    """Fraction of non-missing values that must lie inside the channel's plausible range."""
    min_class_share: float = Field(0.02, ge=0.0, le=1.0)
    """Smallest allowed share of a class among the series of each split."""
    max_class_share: float = Field(0.9, ge=0.0, le=1.0)
    """Largest allowed share of a class among the series of each split."""
    min_series_per_class: int = Field(1, ge=1)
    """Fewest series of every class in every split."""
    min_rows: int = Field(1, ge=0)
    """Fewest rows (time steps over all series)."""
    min_series: int = Field(4, ge=0)
    """Fewest series over all splits."""

    @model_validator(mode="after")
    def _share_bounds(self) -> BasicStatisticsConfig:
        if self.min_class_share > self.max_class_share:
            raise ValueError(
                f"min_class_share ({self.min_class_share}) must not exceed max_class_share ({self.max_class_share})"
            )
        return self


class BusinessRulesConfig(_Strict):
    """Tier 2: keys, uniqueness, ordering, label set, length, sampling and split rules."""

    action: Action = "fail"
    min_series_length: int = Field(2, ge=1)
    """Fewest time steps per series."""
    sampling_interval_tolerance: float = Field(0.01, ge=0.0)
    """Largest allowed relative deviation of any step interval from the dataset's median interval."""


class SeparabilityConfig(_Strict):
    """Tier 3: a light cross-validated model must separate the classes of the training split."""

    action: Action = "fail"
    min_balanced_accuracy: float = Field(0.6, ge=0.0, le=1.0)
    """Floor on the cross-validated balanced accuracy (higher is better)."""
    min_margin_over_chance: float = Field(0.15, ge=0.0, le=1.0)
    """Balanced accuracy must exceed chance (1 / n_classes) by at least this much."""
    min_class_recall: float = Field(0.2, ge=0.0, le=1.0)
    """Floor on every class's cross-validated recall."""
    cv_folds: int = Field(5, ge=2)
    max_series: int = Field(5000, ge=10)
    """Series drawn (seeded) from the training split for the probe; bounds the cost."""
    seed: int = 0


class StageConfig(_Strict):
    """Per-stage settings (the raw long table and the normalized model input differ in scale)."""

    enabled: bool = True
    default_value_range: tuple[float, float] = (-1000.0, 1000.0)
    """Plausible ``[min, max]`` of every channel not matched by ``value_ranges``."""
    value_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """Channel name or glob pattern (``acc_*``) -> ``[min, max]``; the first matching pattern wins."""

    @field_validator("default_value_range")
    @classmethod
    def _ordered_default(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(
                f"default_value_range must be [min, max] with min <= max; got {list(value)}"
            )
        return value

    @field_validator("value_ranges")
    @classmethod
    def _ordered_ranges(
        cls, value: dict[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        for name, (low, high) in value.items():
            if low > high:
                raise ValueError(
                    f"value_ranges[{name!r}] must be [min, max] with min <= max; got {[low, high]}"
                )
        return value

    def value_range(self, channel: str) -> tuple[float, float]:
        """The plausible ``(min, max)`` of ``channel``: exact name first, then the first glob match."""
        if channel in self.value_ranges:
            return self.value_ranges[channel]
        for pattern, bounds in self.value_ranges.items():
            if fnmatch.fnmatchcase(channel, pattern):
                return bounds
        return self.default_value_range


def _default_stages() -> dict[str, StageConfig]:
    return {
        "raw": StageConfig(),
        "model_input": StageConfig(default_value_range=(-50.0, 50.0)),
    }


class DataQualityConfig(_Strict):
    """Everything the data-quality gate needs; build it with :func:`load_config`."""

    gx_project_dir: str = "data/08_reporting"
    """Folder holding the Great Expectations file context ``gx/`` (suites, validation
    definitions and checkpoints as JSON), written on every run: never a folder under ``conf/``."""
    data_docs_dir: str = "data/08_reporting/data_docs"
    """Where the Data Docs HTML site is built (replaced on every build)."""
    channels: tuple[str, ...] | None = None
    """Channel columns; ``None`` means every numeric column except the keys."""
    labels: tuple[str, ...] | None = None
    """The expected label set; ``None`` means the labels of the training split."""
    splits: tuple[str, ...] = ("train", "val", "test")
    """Allowed values of the ``split`` column."""
    basic_statistics: BasicStatisticsConfig = BasicStatisticsConfig()
    business_rules: BusinessRulesConfig = BusinessRulesConfig()
    separability: SeparabilityConfig = SeparabilityConfig()
    stages: dict[str, StageConfig] = Field(default_factory=_default_stages)

    @field_validator("stages", mode="before")
    @classmethod
    def _known_stages(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(STAGES))
            if unknown:
                raise ValueError(f"stages keys must be among {list(STAGES)}; got {unknown}")
            defaults = _default_stages()
            merged: dict[str, Any] = {}
            for stage in STAGES:
                given = value.get(stage)
                if given is None:
                    merged[stage] = defaults[stage]
                elif isinstance(given, Mapping):
                    merged[stage] = {**defaults[stage].model_dump(), **given}
                else:
                    merged[stage] = given
            return merged
        return value

    def tier(self, number: int) -> BasicStatisticsConfig | BusinessRulesConfig | SeparabilityConfig:
        """The config of tier ``number`` (1, 2 or 3)."""
        if number not in TIER_NAMES:
            raise KeyError(f"tier must be one of {sorted(TIER_NAMES)}; got {number!r}")
        return getattr(self, TIER_NAMES[number])

    def stage(self, name: str) -> StageConfig:
        """The settings of stage ``name`` (``raw`` or ``model_input``)."""
        if name not in STAGES:
            raise KeyError(f"stage must be one of {list(STAGES)}; got {name!r}")
        return self.stages[name]


def load_config(params: Mapping[str, Any] | DataQualityConfig | None) -> DataQualityConfig:
    """Build a :class:`DataQualityConfig` from the ``data_quality`` parameters dict.

    Raises:
        DataQualityConfigError: names the offending key (``data_quality.basic_statistics.max_missing_rat``)
            and the valid keys or values.
    """
    return parse("data_quality", DataQualityConfig, params, error=DataQualityConfigError)
