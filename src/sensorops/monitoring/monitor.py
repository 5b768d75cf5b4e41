"""One monitoring pass over a window: data quality, drift, performance, and the decision.

:func:`monitor` is the library entry point the Kedro node calls. The decision:

- ``retrain``: a significant accuracy drop of more than ``performance.max_drop_points``; a
  flagged drift signal whose PSI exceeds ``drift.psi_retrain`` (or a flagged class-share shift
  with a total-variation distance above 0.3); or labels of a class the model does not know;
- ``warn``: any other flagged drift signal, a significant but small accuracy drop, a live data
  quality failure, or too few records to test;
- ``ok``: none of these.

Every reason carries its numbers; the report is a :class:`MonitoringReport`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from sensorops.contracts.base import Artifact
from sensorops.monitoring.config import MonitoringConfig
from sensorops.monitoring.drift import SignalResult, as_dicts, drift_over_time, drift_tests
from sensorops.monitoring.log_reader import LogWindow, channel_matrix, raw_series
from sensorops.monitoring.performance import PerformanceResult, assess
from sensorops.monitoring.reference import Reference

logger = logging.getLogger(__name__)

Decision = Literal["ok", "warn", "retrain"]
_RANK = {"ok": 0, "warn": 1, "retrain": 2}


class MonitoringReport(Artifact):
    """``rpt_monitoring``: the decision, its reasons and every number behind them."""

    artifact: ClassVar[str] = "rpt_monitoring"
    decision: Decision
    reasons: list[str]
    model: str
    version: str
    window: dict[str, Any]
    drifted_channels: list[str]
    drift: list[dict[str, Any]]
    performance: dict[str, Any]
    quality: dict[str, Any]
    traffic: dict[str, Any]


def record_checks(
    records: pd.DataFrame,
    channels: list[str],
    min_channel_std: float,
    max_missing_rate: float,
    value_range: tuple[float, float],
) -> pd.DataFrame:
    """Per-record checks from the logged summaries (the thresholds of the tier-1 suite).

    Returns one row per record: ``ok`` and the ``failures`` (e.g. ``stuck:temperature``).
    """
    mean = channel_matrix(records, "input_mean")
    std = channel_matrix(records, "input_std")
    out = []
    n_steps = records["n_steps"].to_numpy() if "n_steps" in records else None
    nans = records["nans_filled"].to_numpy() if "nans_filled" in records else None
    for i in range(len(records)):
        fails = [f"stuck:{channels[k]}" for k in np.flatnonzero(std[i] < min_channel_std)]
        low, high = value_range
        fails += [
            f"range:{channels[k]}" for k in np.flatnonzero((mean[i] < low) | (mean[i] > high))
        ]
        if n_steps is not None and nans is not None and n_steps[i] > 0:
            share = nans[i] / (n_steps[i] * len(channels))
            if share > max_missing_rate:
                fails.append(f"missing:{share:.3f}")
        out.append({"ok": not fails, "failures": fails})
    return pd.DataFrame(out, index=records.index)


def live_table(records: pd.DataFrame, channels: list[str]) -> pd.DataFrame:
    """The window's raw inputs as the long-format contract table (label = feedback or predicted)."""
    rows = []
    for (_, rec), values in zip(records.iterrows(), raw_series(records), strict=True):
        frame = pd.DataFrame(values, columns=channels)
        frame.insert(0, "t", np.arange(len(values), dtype=np.int64))
        frame.insert(0, "series_id", f"{rec['request_id']}#{int(rec['series_index'])}")
        frame["label"] = rec["label"] if rec["label"] is not None else rec["predicted"]
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _traffic(records: pd.DataFrame, buckets: int) -> dict[str, Any]:
    if not len(records):
        return {"n": 0}
    lat = records["latency_ms"].to_numpy(dtype=np.float64)
    t = records["time"]
    span = (t.max() - t.min()).total_seconds()
    return {
        "n": len(records),
        "requests": int(records["request_id"].nunique()),
        "span_s": float(span),
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p99_ms": float(np.percentile(lat, 99)),
        "by_alias": records["alias"].astype(str).value_counts().to_dict(),
        "by_version": records["version"].astype(str).value_counts().to_dict(),
        "buckets": buckets,
    }


def monitor(
    window: LogWindow,
    reference: Reference,
    config: MonitoringConfig,
    dq_params: Any | None = None,
    gx_dir: str | None = None,
) -> tuple[MonitoringReport, dict[str, Any]]:
    """Check ``window`` against ``reference``; returns the report and the dashboard data."""
    from sensorops.quality import load_config as load_dq

    recs = window.records
    channels = reference.channels
    if window.n_channels and window.n_channels != len(channels):
        raise ValueError(
            f"the log has {window.n_channels} channels per record but version "
            f"{reference.version} has {len(channels)} ({channels})"
        )
    if window.classes and list(window.classes) != list(reference.classes):
        raise ValueError(
            f"the log's classes {list(window.classes)} are not version {reference.version}'s "
            f"{reference.classes}"
        )
    reasons: list[tuple[Decision, str]] = []
    dq = load_dq(dq_params)
    # -- live data quality ------------------------------------------------------------------
    quality: dict[str, Any] = {"record_checks": {}, "great_expectations": None}
    if config.quality.enabled and len(recs):
        checks = record_checks(
            recs,
            channels,
            dq.basic_statistics.min_channel_std,
            dq.basic_statistics.max_missing_rate,
            dq.stage("raw").default_value_range,
        )
        failed = checks[~checks["ok"]]
        kinds: dict[str, int] = {}
        for fails in failed["failures"]:
            for f in fails:
                key = "missing" if f.startswith("missing:") else f
                kinds[key] = kinds.get(key, 0) + 1
        share = len(failed) / len(recs)
        quality["record_checks"] = {"n_failed": len(failed), "share": share, "by_failure": kinds}
        if share > config.quality.max_failed_share:
            reasons.append(
                (
                    "warn",
                    f"live data quality: {len(failed)}/{len(recs)} records "
                    f"({share:.1%}) fail the record checks: {kinds}",
                )
            )
        if window.has_raw_input:
            quality["great_expectations"] = _live_ge(recs, channels, dq, gx_dir, reasons)
        else:
            quality["great_expectations"] = (
                "not run: the log has no raw input column 'input_values' (summaries only)"
            )
    # -- drift -----------------------------------------------------------------------------------
    mean, std = channel_matrix(recs, "input_mean"), channel_matrix(recs, "input_std")
    cost = recs["alignment_cost"].to_numpy(dtype=np.float64) if len(recs) else np.empty(0)
    proba = channel_matrix(recs, "probabilities")
    conf = proba.max(axis=1) if len(recs) else np.empty(0)
    predicted = recs["predicted"].astype(str).tolist()
    results: list[SignalResult] = []
    over_time: dict[str, list[float]] = {}
    if len(recs) < config.drift.min_records:
        reasons.append(
            (
                "warn",
                f"only {len(recs)} records in the window (< drift.min_records="
                f"{config.drift.min_records}): drift not tested",
            )
        )
    else:
        results = drift_tests(reference, mean, std, cost, conf, predicted, config.drift)
        over_time = drift_over_time(reference, mean, std, config.drift.time_buckets)
    drifted = sorted({r.channel for r in results if r.flagged and r.channel})
    for r in (r for r in results if r.flagged):
        severe = (r.psi is not None and r.psi > config.drift.psi_retrain) or (
            r.kind == "predicted" and r.effect > 0.3
        )
        reasons.append(("retrain" if severe else "warn", f"drift: {r.describe()}"))
    # -- performance -----------------------------------------------------------------------------
    lab = window.labelled
    perf: PerformanceResult = assess(
        lab["label"].astype(str).tolist(),
        lab["predicted"].astype(str).tolist(),
        reference.classes,
        reference.test_accuracy,
        reference.n_test,
        config.performance,
    )
    if perf.unknown_labels:
        reasons.append(
            ("retrain", f"labels of class(es) the model does not know: {perf.unknown_labels}")
        )
    if perf.tested and perf.significant_drop:
        drop = perf.drop_points or 0.0
        level: Decision = "retrain" if drop > config.performance.max_drop_points else "warn"
        reasons.append(
            (
                level,
                (
                    f"accuracy {perf.accuracy:.3f} on {perf.n_labelled} labelled records "
                    f"(95% CI {perf.ci95[0]:.3f}-{perf.ci95[1]:.3f}) vs offline {perf.offline_accuracy:.3f}"
                    f" on {perf.offline_n}: drop {drop:.1f} points, Fisher p {perf.p_value:.2g}"
                ),
            )
        )
    decision: Decision = "ok"
    for level, _ in reasons:
        if _RANK[level] > _RANK[decision]:
            decision = level
    start, end = window.date_range()
    report = MonitoringReport(
        decision=decision,
        reasons=[f"[{lv}] {text}" for lv, text in reasons]
        or ["no drift, quality or accuracy issue"],
        model=reference.model,
        version=reference.version,
        window={
            "since": start,
            "until": end,
            "n_records": window.n,
            "n_labelled": int(len(lab)),
            "digest": window.digest,
            "files": len(window.files),
            "log_dir": window.log_dir,
            "versions": window.versions(),
            "config": config.window.model_dump(mode="json"),
        },
        drifted_channels=drifted,
        drift=as_dicts(results),
        performance=perf.to_dict(),
        quality=quality,
        traffic=_traffic(recs, config.drift.time_buckets),
    )
    logger.info(
        "monitoring %s v%s: %s (%s)",
        reference.model,
        reference.version,
        decision,
        "; ".join(report.reasons),
    )
    plot = {"records": recs, "over_time": over_time, "reference": reference, "report": report}
    return report, plot


def _live_ge(
    recs: pd.DataFrame,
    channels: list[str],
    dq: Any,
    gx_dir: str | None,
    reasons: list[tuple[Decision, str]],
) -> dict[str, Any]:
    """Tiers 1-3 of the committed raw-stage suites on the window's raw inputs."""
    from sensorops.quality import validate_table

    cfg = dq
    if gx_dir is not None:
        cfg = dq.model_copy(
            update={"gx_project_dir": gx_dir, "data_docs_dir": f"{gx_dir}/data_docs"}
        )
    result = validate_table(
        live_table(recs, channels), cfg, stage="raw", labels=None, channels=channels
    )
    tiers = {}
    for tier in result.tiers:
        tiers[f"tier{tier.tier}"] = {
            "success": tier.success,
            "failed": [o.describe() for o in tier.failures][:20],
            "evaluated": tier.evaluated,
        }
        if not tier.success:
            reasons.append(
                (
                    "warn",
                    f"live data quality: GE raw tier {tier.tier} ({tier.name}) "
                    f"failed {len(tier.failures)}/{tier.evaluated}: "
                    f"{[o.describe() for o in tier.failures][:3]}",
                )
            )
    return {"tiers": tiers, "data_docs": result.data_docs_index}
