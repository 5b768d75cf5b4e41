"""Strict configuration of progressive rollout (``conf/base/parameters_rollout.yml``, key ``rollout``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from sensorops.config_validation import ConfigError, StrictModel, load_section, parse
from sensorops.registry.config import LockConfig


class RolloutConfigError(ConfigError):
    """A rollout parameter has an unknown key or an invalid value (names the key)."""

    exit_code = 2


class ChecksConfig(StrictModel):
    """What the canary must show, per window, before its weight grows (see :mod:`.checks`)."""

    min_requests: int = Field(20, ge=1, description="answered requests per arm before any decision")
    max_error_rate_increase: float = Field(
        0.02, ge=0.0, le=1.0, description="allowed canary - production error rate (absolute)"
    )
    error_alpha: float = Field(0.05, gt=0.0, lt=1.0, description="one-sided Fisher test level")
    max_latency_ratio: float = Field(1.5, gt=0.0, description="allowed canary/production p99")
    min_requests_p99: int = Field(
        100, ge=1, description="answered requests per arm before p99 is compared (else p50 only)"
    )
    max_p50_ratio: float = Field(1.5, gt=0.0, description="allowed canary/production p50")
    latency_floor_ms: float = Field(
        5.0, ge=0.0, description="latencies below this count as this (no ratio of tiny numbers)"
    )
    max_cpu_ratio: float = Field(
        1.5, gt=0.0, description="allowed canary/production model CPU seconds per series"
    )
    cpu_floor_ms: float = Field(0.5, ge=0.0, description="CPU per series below this counts as this")
    min_labelled: int = Field(
        20, ge=1, description="labelled series per arm before accuracy is compared"
    )
    max_accuracy_drop_points: float = Field(
        5.0, ge=0.0, le=100.0, description="allowed production - canary accuracy, in points"
    )
    accuracy_alpha: float = Field(0.05, gt=0.0, lt=1.0, description="one-sided Fisher test level")
    require_accuracy: bool = Field(
        True, description="hold until min_labelled labels per arm arrived (else skip the check)"
    )


class RolloutConfig(StrictModel):
    """Everything ``sensorops rollout`` needs; every field has the reference default."""

    canary_alias: str = Field("canary", min_length=1)
    initial_weight: float = Field(5.0, gt=0.0, le=100.0, description="canary share at start")
    step_points: float = Field(5.0, gt=0.0, le=100.0, description="weight added per step")
    interval_s: float = Field(30.0, gt=0.0, description="seconds between decisions")
    max_holds: int = Field(
        10, ge=1, description="consecutive holds (too little data) before the rollout is aborted"
    )
    max_duration_s: float = Field(7200.0, gt=0.0, description="run gives up (rolls back) after")
    flush_grace_s: float = Field(
        1.0, ge=0.0, description="extra wait for the arm log's last roll before a decision"
    )
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    lock: LockConfig = Field(
        default_factory=lambda: LockConfig(timeout_s=5.0),
        description="the controller lease (sensorops.rollout.lock); timeout_s = refusal time",
    )


def load_rollout_config(
    conf_dir: str | Path, env: str | None = None, overrides: dict[str, Any] | None = None
) -> RolloutConfig:
    """``conf/base/parameters_rollout.yml``, then ``conf/<env>/``, then ``overrides``."""
    merged = load_section(conf_dir, "rollout", env, overrides, error=RolloutConfigError)
    return parse("rollout", RolloutConfig, merged, error=RolloutConfigError)
