"""Typed configuration of registration and promotion, built from the ``promotion`` parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sensorops.config_validation import StrictModel, parse
from sensorops.registry.errors import RegistryConfigError

Metric = Literal["accuracy", "macro_f1"]


_Strict = StrictModel


class GateConfig(_Strict):
    """Which gates run before a promotion, and their margins.

    Attributes:
        require_dq_passed: refuse unless the data-quality summary recorded at registration passed
            and no tier with ``action: fail`` failed.
        require_parity_passed: refuse unless the ONNX export parity check passed.
        require_compression_gate: refuse a compression variant whose own gate did not pass.
        regression_metric: test-split metric compared against the current ``@production`` model
            (higher is better).
        staging_margin_points: allowed drop, in percentage points of ``regression_metric``, of the
            candidate below current production before promotion to staging is refused.
        production_margin_points: same, before promotion to production.
        require_beats_baseline: refuse staging/production of a model whose test
            ``regression_metric`` is below the same run's 1-NN DTW baseline minus
            ``baseline_margin_points`` (see :mod:`sensorops.registry.baseline_gate`).
        baseline_margin_points: allowed shortfall below that baseline, in percentage points.
        allow_below_baseline: the explicit override: stage it anyway (the report says so).
    """

    require_dq_passed: bool = True
    require_parity_passed: bool = True
    require_compression_gate: bool = True
    regression_metric: Metric = "accuracy"
    staging_margin_points: float = Field(default=2.0, ge=0.0, le=100.0)
    production_margin_points: float = Field(default=1.0, ge=0.0, le=100.0)
    require_beats_baseline: bool = True
    baseline_margin_points: float = Field(default=2.0, ge=0.0, le=100.0)
    allow_below_baseline: bool = False


class LockConfig(_Strict):
    """The registered-model lease that serialises promotions (see :mod:`sensorops.registry.lock`).

    Attributes:
        ttl_s: lease lifetime; a crashed holder's lease expires after this many seconds.
        settle_s: wait between writing the lease and re-reading it; must exceed ``max_write_gap_s``.
        max_write_gap_s: longest accepted time between reading "free" and writing our lease.
        timeout_s: give up (``LockBusy``) after waiting this long for the lease.
    """

    ttl_s: float = Field(default=120.0, gt=0)
    settle_s: float = Field(default=0.75, gt=0)
    max_write_gap_s: float = Field(default=0.5, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _settle_exceeds_gap(self) -> LockConfig:
        if self.settle_s <= self.max_write_gap_s:
            raise ValueError(
                f"lock.settle_s ({self.settle_s}) must be greater than lock.max_write_gap_s "
                f"({self.max_write_gap_s}), otherwise two writers can both believe they hold the lease"
            )
        return self


class PromotionConfig(_Strict):
    """Parameters of the ``promotion`` pipeline (``conf/base/parameters_promotion.yml``).

    Attributes:
        model_name: registered model name in the MLflow registry.
        experiment_name: experiment used when no MLflow run is active (CLI, notebooks).
        base_variant: variant name given to the parity-checked export.
        staging_variant: variant the pipeline promotes to staging after registering.
        register_compression_variants: also register compression variants whose gate passed.
        fail_on_refusal: raise (fail the Kedro run) when the staging promotion is refused; when
            false the refusal is only reported in ``rpt_promotion``.
        gates: gate switches and margins.
        lock: promotion lease settings.
    """

    model_name: str = Field(default="sensorops-classifier", min_length=1)
    experiment_name: str = Field(default="sensorops-promotion", min_length=1)
    base_variant: str = Field(default="fp32", min_length=1)
    staging_variant: str = Field(default="fp32", min_length=1)
    register_compression_variants: bool = True
    fail_on_refusal: bool = False
    gates: GateConfig = Field(default_factory=GateConfig)
    lock: LockConfig = Field(default_factory=LockConfig)

    @classmethod
    def from_params(
        cls, params: dict[str, Any] | None, prefix: str = "promotion"
    ) -> PromotionConfig:
        """Build from the plain ``params:promotion`` dict; errors name the key and what is valid."""
        return parse(prefix, cls, params, error=RegistryConfigError)
