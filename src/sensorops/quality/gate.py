"""The data-quality gate: validate one stage in three tiers with Great Expectations, then act.

Usage (what the Kedro nodes call)::

    result = run_gate_on_table(int_sensor_long, params)        # stage "raw"
    result = run_gate_on_model_input(mi_model_input, params)   # stage "model_input"

Each runs every tier, builds Data Docs, then applies the tiers' actions: a failed ``fail`` tier
raises :class:`DataQualityError` listing every failed expectation with its rule, column and
observed value; a failed ``warn`` tier is logged and reported in ``result.warnings``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sensorops.model_input import ModelInput
from sensorops.quality import context as gxc
from sensorops.quality.config import TIER_NAMES, DataQualityConfig, load_config
from sensorops.quality.frames import (
    LABEL,
    SERIES_ID,
    SPLIT,
    abs_correlation_frame,
    check_long_table,
    class_stats_frame,
    correlation_frame,
    infer_channels,
    model_input_to_long,
    series_features,
    series_labels,
    series_stats_frame,
)
from sensorops.quality.separability import SeparabilityProbe
from sensorops.quality.suites import (
    CLASS_RECALL,
    CLASS_STATS,
    CORRELATION,
    DATA,
    SEPARABILITY,
    SERIES_STATS,
    build_suite_specs,
)

logger = logging.getLogger(__name__)

TRAIN = "train"
_MAX_LISTED = 20


class DataQualityError(ValueError):
    """A tier whose action is ``fail`` did not pass; ``failures`` lists what failed.

    The message alone carries the whole listing, so the error survives pickling (ParallelRunner)
    even though ``failures`` and ``result`` do not travel with it.
    """

    def __init__(
        self,
        message: str,
        failures: Sequence[ExpectationOutcome] = (),
        result: StageResult | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = tuple(failures)
        self.result = result


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


@dataclass(frozen=True)
class ExpectationOutcome:
    """One evaluated expectation, with the rule and data column it stands for."""

    stage: str
    tier: int
    rule: str
    column: str | None
    suite: str
    expectation_type: str
    success: bool
    observed: Any
    expected: dict[str, Any]

    def describe(self) -> str:
        """One line: ``tier 1 basic_statistics: rule 'missing_rate' column 'acc_x' ... observed ...``."""
        column = self.column if self.column is not None else "(table)"
        expected = ", ".join(f"{k}={v}" for k, v in self.expected.items())
        return (
            f"tier {self.tier} {TIER_NAMES[self.tier]}: rule '{self.rule}' column '{column}' "
            f"[{self.expectation_type}({expected}) on {self.suite}] observed {_short(self.observed)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "tier": self.tier,
                "rule": self.rule,
                "column": self.column,
                "suite": self.suite,
                "expectation_type": self.expectation_type,
                "success": self.success,
                "observed": self.observed,
                "expected": self.expected,
            }
        )


def _short(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, default=_json_default)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class TierResult:
    """Outcome of one tier of one stage."""

    stage: str
    tier: int
    action: str
    outcomes: tuple[ExpectationOutcome, ...]
    statistics: dict[str, float]
    seconds: float

    @property
    def name(self) -> str:
        return TIER_NAMES[self.tier]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def evaluated(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "name": self.name,
                "success": self.success,
                "action": self.action,
                "evaluated": self.evaluated,
                "failed": len(self.failures),
                "failed_rules": sorted({o.rule for o in self.failures}),
                "failures": [o.to_dict() for o in self.failures],
                "statistics": self.statistics,
                "seconds": round(self.seconds, 4),
            }
        )


@dataclass(frozen=True)
class StageResult:
    """Outcome of all tiers of one stage (``raw`` or ``model_input``)."""

    stage: str
    tiers: tuple[TierResult, ...]
    data_docs_index: str | None
    correlation: pd.DataFrame = field(repr=False)
    validation_results: tuple[dict[str, Any], ...] = field(repr=False, default=())
    channels: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    skipped: bool = False

    @property
    def passed(self) -> bool:
        """No tier whose action is ``fail`` failed."""
        return all(t.success for t in self.tiers if t.action == "fail")

    @property
    def warnings(self) -> tuple[TierResult, ...]:
        """Failed tiers whose action is ``warn``."""
        return tuple(t for t in self.tiers if t.action == "warn" and not t.success)

    def tier(self, number: int) -> TierResult:
        for t in self.tiers:
            if t.tier == number:
                return t
        raise KeyError(
            f"stage {self.stage!r} has no tier {number}; tiers are {[t.tier for t in self.tiers]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The summary of this stage: per tier ``{success, action, evaluated, failed, ...}``."""
        return {
            "passed": self.passed,
            "skipped": self.skipped,
            "channels": list(self.channels),
            "labels": list(self.labels),
            "data_docs_index": self.data_docs_index,
            "tiers": {f"tier{t.tier}": t.to_dict() for t in self.tiers},
        }


def _outcomes(stage: str, suite: str, validation: Any) -> list[ExpectationOutcome]:
    out = []
    for res in validation.results:
        cfg = res.expectation_config
        meta = dict(cfg.meta or {})
        result = dict(res.result or {})
        exc = dict(res.exception_info or {}) if isinstance(res.exception_info, Mapping) else {}
        observed = _observed(result)
        if exc.get("raised_exception"):
            observed = f"error: {exc.get('exception_message')}"
        expected = {
            k: v
            for k, v in dict(cfg.kwargs).items()
            if k not in ("column", "batch_id", "column_list")
        }
        if (
            isinstance(expected.get("value_set"), (list, tuple))
            and len(expected["value_set"]) > _MAX_LISTED
        ):
            expected["value_set"] = [*list(expected["value_set"])[:_MAX_LISTED], "..."]
        out.append(
            ExpectationOutcome(
                stage=stage,
                tier=int(meta.get("tier", 0)),
                rule=str(meta.get("rule", cfg.type)),
                column=meta.get("column", cfg.kwargs.get("column")),
                suite=suite,
                expectation_type=str(cfg.type),
                success=bool(res.success),
                observed=_jsonable(observed),
                expected=_jsonable(expected),
            )
        )
    return out


def _observed(result: dict[str, Any]) -> Any:
    """The most telling observed value of a GE result (the value, failing keys, or counts)."""
    if result.get("unexpected_index_list"):
        rows = result["unexpected_index_list"][:_MAX_LISTED]
        return [{str(k): v for k, v in row.items()} for row in rows]
    if result.get("observed_value") is not None:
        return result["observed_value"]
    if "unexpected_count" in result or "missing_count" in result:
        keys = (
            "unexpected_count",
            "unexpected_percent",
            "element_count",
            "partial_unexpected_list",
            "partial_missing_list",
        )
        summary = {k: result[k] for k in keys if k in result and result[k] is not None}
        if isinstance(summary.get("partial_unexpected_list"), list):
            summary["partial_unexpected_list"] = summary["partial_unexpected_list"][:10]
        return summary
    return result or None


def expected_labels(config: DataQualityConfig, per_series: pd.DataFrame) -> tuple[str, ...]:
    """The configured label set, else the labels of the training split (else of all series)."""
    if config.labels is not None:
        return tuple(str(v) for v in config.labels)
    known = per_series.dropna(subset=[LABEL])
    train = known[known[SPLIT].astype(str) == TRAIN]
    source = train if len(train) else known
    return tuple(sorted(source[LABEL].astype(str).unique()))


def _probe_frames(
    frame: pd.DataFrame,
    per_series: pd.DataFrame,
    channels: Sequence[str],
    config: DataQualityConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, SeparabilityProbe]:
    known = per_series.dropna(subset=[LABEL])
    train = known[known[SPLIT].astype(str) == TRAIN]
    part, used = (train, TRAIN) if len(train) else (known, "all")
    cfg = config.separability
    rng = np.random.default_rng(cfg.seed)
    if len(part) > cfg.max_series:
        part = part.iloc[np.sort(rng.choice(len(part), size=cfg.max_series, replace=False))]
    ids = part[SERIES_ID].astype(str).tolist()
    features = series_features(frame, channels, ids)
    probe = SeparabilityProbe(cv_folds=cfg.cv_folds, max_series=cfg.max_series, seed=cfg.seed)
    probe.fit(features, part[LABEL].astype(str).tolist())
    scores = pd.DataFrame(
        {
            "key": [used],
            "balanced_accuracy": [probe.balanced_accuracy_],
            "chance": [probe.chance_],
            "margin_over_chance": [probe.balanced_accuracy_ - probe.chance_],
            "n_series": [probe.n_series_],
            "folds": [probe.folds_],
            "note": [probe.note_],
        }
    )
    recall = pd.DataFrame(
        {"key": list(probe.recall_), "recall": list(probe.recall_.values())}, dtype=object
    )
    recall["recall"] = recall["recall"].astype("float64")
    return scores, recall, probe


def _statistics(
    tier: int,
    frames: dict[str, pd.DataFrame],
    channels: Sequence[str],
    corr_abs: pd.DataFrame | None,
) -> dict[str, float]:
    stats: dict[str, float] = {}
    if tier == 1:
        data = frames[DATA]
        stats["n_rows"] = float(len(data))
        stats["n_series"] = float(len(frames[SERIES_STATS]))
        for ch in channels:
            stats[f"missing_rate.{ch}"] = float(data[ch].isna().mean()) if len(data) else 0.0
        if corr_abs is not None and len(channels) >= 2:
            stats["max_abs_correlation"] = float(corr_abs[list(channels)].to_numpy().max())
        for row in frames[CLASS_STATS].itertuples(index=False):
            stats[f"class_share.{row.split}.{row.label}"] = float(row.share)
    elif tier == 2:
        series = frames[SERIES_STATS]
        stats["n_series_t_not_increasing"] = float((~series["t_strictly_increasing"]).sum())
        stats["max_interval_deviation"] = (
            float(series["interval_deviation"].max()) if len(series) else 0.0
        )
        stats["min_series_length"] = float(series["n_steps"].min()) if len(series) else 0.0
        stats["n_series_in_several_splits"] = float((series["n_splits"] > 1).sum())
    else:
        scores = frames[SEPARABILITY]
        stats["balanced_accuracy"] = float(scores["balanced_accuracy"].iloc[0])
        stats["chance"] = float(scores["chance"].iloc[0])
        for row in frames[CLASS_RECALL].itertuples(index=False):
            stats[f"recall.{row.key}"] = float(row.recall)
    return stats


def validate_table(
    frame: pd.DataFrame,
    params: Mapping[str, Any] | DataQualityConfig,
    stage: str = "raw",
    labels: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
) -> StageResult:
    """Run tiers 1-3 of ``stage`` on a long table and build Data Docs; never raises on bad data.

    Args:
        frame: long table, one row per (series, time step): ``series_id``, ``t``, one numeric
            column per channel, ``label``, optional ``split``.
        params: the ``data_quality`` parameters (or a built config).
        stage: ``raw`` or ``model_input``; names the suites and picks the stage settings.
        labels: expected label set overriding the configured/inferred one.
        channels: channel columns overriding the configured/inferred ones.

    Returns:
        The per-tier results; apply the actions with :func:`enforce`.
    """
    config = load_config(params)
    frame = check_long_table(frame)
    chans = infer_channels(frame, channels if channels is not None else config.channels)
    if not config.stage(stage).enabled:
        logger.info("data quality stage %r disabled; skipping", stage)
        return StageResult(stage, (), None, pd.DataFrame(), channels=chans, skipped=True)
    per_series = series_labels(frame)
    label_set = (
        tuple(str(v) for v in labels) if labels is not None else expected_labels(config, per_series)
    )
    has_split = SPLIT in frame.columns
    specs = build_suite_specs(stage, config, chans, label_set, has_split)
    ctx = gxc.get_gx_context(config.gx_project_dir)
    gxc.prune_validation_results(ctx, stage)

    frames: dict[str, pd.DataFrame] = {DATA: frame}
    corr: pd.DataFrame | None = None
    corr_abs: pd.DataFrame | None = None
    tiers: list[TierResult] = []
    validations: list[dict[str, Any]] = []
    for tier in (1, 2, 3):
        start = time.perf_counter()
        if tier == 1:
            corr = correlation_frame(frame, chans)
            corr_abs = abs_correlation_frame(corr)
            frames[CORRELATION] = corr_abs
            frames[SERIES_STATS] = series_stats_frame(frame)
            frames[CLASS_STATS] = class_stats_frame(per_series, label_set)
        elif tier == 3:
            frames[SEPARABILITY], frames[CLASS_RECALL], _ = _probe_frames(
                frame, per_series, chans, config
            )
        outcomes: list[ExpectationOutcome] = []
        for spec in (s for s in specs if s.tier == tier):
            checkpoint = gxc.register_suite(ctx, spec)
            validation = gxc.run_checkpoint(checkpoint, frames[spec.frame])
            outcomes.extend(_outcomes(stage, spec.name, validation))
            validations.append({"suite": spec.name, "result": _jsonable(validation.to_json_dict())})
        stats = _statistics(tier, frames, chans, corr_abs)
        result = TierResult(
            stage=stage,
            tier=tier,
            action=config.tier(tier).action,
            outcomes=tuple(outcomes),
            statistics=stats,
            seconds=time.perf_counter() - start,
        )
        logger.info(
            "data quality %s tier %d (%s): %s, %d/%d expectations failed in %.2f s",
            stage,
            tier,
            result.name,
            "passed" if result.success else "FAILED",
            len(result.failures),
            result.evaluated,
            result.seconds,
        )
        tiers.append(result)
    index = gxc.build_data_docs(ctx, config.data_docs_dir)
    return StageResult(
        stage=stage,
        tiers=tuple(tiers),
        data_docs_index=str(index),
        correlation=corr if corr is not None else pd.DataFrame(),
        validation_results=tuple(validations),
        channels=chans,
        labels=label_set,
    )


def validate_model_input(
    mi: ModelInput, params: Mapping[str, Any] | DataQualityConfig
) -> StageResult:
    """Run tiers 1-3 of stage ``model_input`` on a :class:`ModelInput` (flattened to a long table).

    The expected label set is the configured one, else ``mi.classes``.
    """
    if not isinstance(mi, ModelInput):
        raise TypeError(f"expected a sensorops.model_input.ModelInput; got {type(mi).__name__}")
    config = load_config(params)
    labels = config.labels if config.labels is not None else mi.classes
    return validate_table(
        model_input_to_long(mi), config, stage="model_input", labels=labels, channels=mi.channels
    )


def enforce(result: StageResult) -> StageResult:
    """Apply each tier's action: raise for failed ``fail`` tiers, log failed ``warn`` tiers.

    Raises:
        DataQualityError: lists every failed expectation of every failed ``fail`` tier (rule,
            column, expectation, observed value) and where the Data Docs are.
    """
    for tier in result.warnings:
        logger.warning(
            "data quality %s tier %d (%s) failed with action 'warn'; continuing:\n%s",
            result.stage,
            tier.tier,
            tier.name,
            "\n".join(f"  - {o.describe()}" for o in tier.failures),
        )
    failed = [t for t in result.tiers if t.action == "fail" and not t.success]
    if not failed:
        return result
    failures = [o for t in failed for o in t.failures]
    heads = ", ".join(
        f"tier {t.tier} {t.name} ({len(t.failures)}/{t.evaluated} failed)" for t in failed
    )
    lines = "\n".join(f"  - {o.describe()}" for o in failures)
    message = (
        f"data quality gate failed at stage '{result.stage}': {heads}. "
        f"{len(failures)} failed expectation(s):\n{lines}\nData Docs: {result.data_docs_index}"
    )
    raise DataQualityError(message, failures, result)


def run_gate_on_table(
    frame: pd.DataFrame, params: Mapping[str, Any] | DataQualityConfig
) -> StageResult:
    """Validate the raw long table (stage ``raw``) and apply the tier actions."""
    return enforce(validate_table(frame, params, stage="raw"))


def run_gate_on_model_input(
    mi: ModelInput, params: Mapping[str, Any] | DataQualityConfig
) -> StageResult:
    """Validate the model input (stage ``model_input``) and apply the tier actions."""
    return enforce(validate_model_input(mi, params))
