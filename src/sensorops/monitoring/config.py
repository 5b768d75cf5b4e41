"""Strict configuration of monitoring and retraining (``conf/base/parameters_monitoring.yml``).

One model per YAML block; every field has the reference default. Build with
:func:`load_monitoring_config` (``params:monitoring``) and :func:`load_retraining_config`
(``params:retraining``); errors use the one template of :mod:`sensorops.config_validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sensorops.config_validation import ConfigError, StrictModel, parse


class MonitoringConfigError(ConfigError):
    """A ``monitoring`` or ``retraining`` parameter has an unknown key or an invalid value."""


class WindowConfig(StrictModel):
    """Which records of the prediction log one monitoring run looks at."""

    since: datetime | None = Field(None, description="UTC start (inclusive); null: open")
    until: datetime | None = Field(None, description="UTC end (exclusive); null: open")
    last_n: int | None = Field(None, ge=1, description="then keep only the newest N records")
    request_id_prefix: str | None = Field(
        None, description="keep only requests whose id starts with this (a replay, a tenant)"
    )

    @model_validator(mode="after")
    def _order(self) -> WindowConfig:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        return self


class DriftConfig(StrictModel):
    """The drift tier: two-sample tests of the window against the training reference."""

    alpha: float = Field(0.01, gt=0.0, lt=1.0, description="family-wise / FDR level of all tests")
    correction: Literal["bh", "bonferroni"] = "bh"
    min_ks: float = Field(
        0.2, ge=0.0, le=1.0, description="a significant test also needs this KS distance"
    )
    psi_bins: int = Field(10, ge=2, le=50, description="training-quantile bins of the PSI")
    psi_retrain: float = Field(
        0.5, gt=0.0, description="a flagged signal with PSI above this asks for retraining"
    )
    min_records: int = Field(20, ge=2, description="fewer records: drift is not tested")
    time_buckets: int = Field(8, ge=1, le=100, description="buckets of the drift-over-time plot")


class PerformanceConfig(StrictModel):
    """Accuracy on the labelled part of the window against the version's offline test figure."""

    alpha: float = Field(0.01, gt=0.0, lt=1.0, description="level of the one-sided Fisher test")
    min_labelled: int = Field(10, ge=1, description="fewer labelled records: not tested")
    max_drop_points: float = Field(
        5.0, ge=0.0, le=100.0, description="a significant drop larger than this asks for retraining"
    )


class QualityConfig(StrictModel):
    """Live data quality with the committed Great Expectations suites (needs the raw input)."""

    enabled: bool = True
    max_failed_share: float = Field(
        0.05, ge=0.0, le=1.0, description="share of records failing the record checks before warn"
    )


class ReferenceConfig(StrictModel):
    """The training reference the window is compared with."""

    cache_dir: str = "data/06_models/monitoring"
    splits: tuple[Literal["train", "val", "test"], ...] = ("train", "val", "test")
    heldout_splits: tuple[Literal["train", "val", "test"], ...] = Field(
        ("val", "test"), description="model-side signals use these (not fitted on)"
    )
    require_lineage: bool = Field(
        True, description="refuse a reference whose data digest differs from the version's tag"
    )
    max_series: int = Field(2000, ge=10, description="seeded sample of the reference series")
    seed: int = 0


class MonitoringConfig(StrictModel):
    """``params:monitoring``."""

    model: str = "sensorops-classifier"
    alias: str = "production"
    fallback_alias: str | None = "staging"
    version: str | None = Field(None, description="pin a version instead of the alias")
    log_dir: str = "data/07_model_output/prediction_log"
    feedback_dir: str | None = Field(None, description="null: <log_dir>/../feedback")
    experiment: str = "sensorops-monitoring"
    report_dir: str = "data/08_reporting/monitoring"
    force_retrain: bool = False
    window: WindowConfig = Field(default_factory=WindowConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # `--params monitoring.version=3` arrives as an int; a version is its registry string
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class RetrainingConfig(StrictModel):
    """``params:retraining``: how the log joins the training data."""

    require_decision: bool = Field(
        True, description="refuse unless the last report says retrain (or force_retrain)"
    )
    min_records: int = Field(1, ge=0, description="labelled, quality-passing log records needed")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="of the log series (by request)")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="of the log training series")
    max_nan_share: float = Field(0.05, ge=0.0, le=1.0, description="record check: NaN share")
    min_channel_std: float = Field(1e-8, ge=0.0, description="record check: stuck channel")
    value_range: tuple[float, float] = (-1000.0, 1000.0)


def load_monitoring_config(params: Mapping[str, Any] | MonitoringConfig | None) -> MonitoringConfig:
    """``params:monitoring`` as a :class:`MonitoringConfig`."""
    return parse("monitoring", MonitoringConfig, params, error=MonitoringConfigError)


def load_retraining_config(params: Mapping[str, Any] | RetrainingConfig | None) -> RetrainingConfig:
    """``params:retraining`` as a :class:`RetrainingConfig`."""
    return parse("retraining", RetrainingConfig, params, error=MonitoringConfigError)
