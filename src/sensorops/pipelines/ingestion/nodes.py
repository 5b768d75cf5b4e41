"""Thin Kedro nodes of the ``ingestion`` pipeline over :mod:`sensorops.timeseries`.

Each node turns its parameter slice into a typed config on its first line, returns new objects
and never mutates its inputs.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sensorops.model_input import SPLITS, ModelInput
from sensorops.timeseries.ablation import run_ablation
from sensorops.timeseries.config import (
    AblationConfig,
    AlignmentConfig,
    ContractConfig,
    NormalizeConfig,
    OutlierConfig,
    ReportingConfig,
    SourceConfig,
    SplitConfig,
    parse_config,
)
from sensorops.timeseries.contract import check_contract
from sensorops.timeseries.outliers import outlier_counts
from sensorops.timeseries.prepare import align, clean, normalize
from sensorops.timeseries.reporting import cost_histogram, counts_per_split_class, examples_figure
from sensorops.timeseries.series import long_to_series, series_to_long
from sensorops.timeseries.sources import load_source
from sensorops.timeseries.split import assign_splits

logger = logging.getLogger(__name__)


def load_raw_source(source: dict[str, Any]) -> pd.DataFrame:
    """Materialise the configured source (BasicMotions, long table, .ts, synthetic) as ``raw_sensor_long``."""
    cfg = parse_config(SourceConfig, source, "ingestion.source")
    return load_source(cfg)


def check_raw_contract(
    raw_sensor_long: pd.DataFrame, source: dict[str, Any], contract: dict[str, Any]
) -> pd.DataFrame:
    """Check the raw table against the contract; errors name the source file, column or series."""
    cfg = parse_config(ContractConfig, contract, "ingestion.contract")
    src = parse_config(SourceConfig, source, "ingestion.source")
    return check_contract(raw_sensor_long, cfg, src.describe())


def split_series(int_sensor_checked: pd.DataFrame, split: dict[str, Any]) -> pd.DataFrame:
    """Assign train/val/test per series (stratified, seeded) -> ``int_sensor_long``."""
    cfg = parse_config(SplitConfig, split, "ingestion.split")
    return assign_splits(int_sensor_checked, cfg)


def handle_outliers(
    int_sensor_long: pd.DataFrame, outliers: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Repair dropouts and spikes, score series with IForest (fitted on train), drop/flag outliers.

    Returns:
        ``prm_sensor_clean`` (repaired long table, train outliers dropped if configured),
        ``mdl_outlier_filter`` (``{"config": ..., "filter": OutlierFilter | None}``),
        ``rpt_outlier_series`` (one row per series: score, is_outlier, action, repairs),
        ``rpt_outlier_summary`` (counts per split and class, threshold, flagged ids).
    """
    cfg = parse_config(OutlierConfig, outliers, "ingestion.outliers")
    result, filt = clean(int_sensor_long, cfg)
    report = result.report
    flagged = {
        s: report.loc[(report["split"] == s) & report["is_outlier"], "series_id"].tolist()
        for s in SPLITS
    }
    summary = {
        "enabled": cfg.enabled,
        "score_convention": "pyod decision_function: higher = more anomalous; outlier if score > threshold",
        "threshold": float(filt.threshold_) if filt is not None else None,
        "contamination": cfg.contamination,
        "train_action": cfg.train_action,
        "counts": outlier_counts(report),
        "flagged": flagged,
        "dropped": report.loc[report["action"] == "dropped", "series_id"].tolist(),
        "points_repaired": int(report["points_repaired"].sum()),
        "nans_filled": int(report["nans_filled"].sum()),
    }
    model = {"config": cfg.model_dump(), "filter": filt}
    return (
        _with_original_steps(series_to_long(result.series), int_sensor_long),
        model,
        report,
        summary,
    )


def _with_original_steps(clean: pd.DataFrame, original: pd.DataFrame) -> pd.DataFrame:
    """Put the user's own ``t`` (timestamps or steps) back on the repaired table.

    Repair keeps every series' length and order, so the kept series' ``t`` values are the
    original ones in (series_id, t) order; ``series_to_long`` numbers them 0..L-1 instead.
    """
    ordered = original.sort_values(["series_id", "t"], kind="stable")
    steps = {
        str(sid): group.to_numpy() for sid, group in ordered.groupby("series_id", sort=False)["t"]
    }
    parts = []
    for sid, group in clean.groupby("series_id", sort=False)["t"]:
        original_t = steps.get(str(sid))
        if original_t is None or len(original_t) != len(group):
            raise ValueError(
                f"series {sid!r}: outlier handling changed its length ({len(group)} vs "
                f"{0 if original_t is None else len(original_t)} original steps)"
            )
        parts.append(original_t)
    out = clean.copy()
    if parts:
        out["t"] = np.concatenate(parts)
    else:
        out["t"] = original["t"].iloc[:0].to_numpy()
    return out


def align_series(
    prm_sensor_clean: pd.DataFrame, alignment: dict[str, Any]
) -> tuple[ModelInput, dict[str, Any], pd.DataFrame]:
    """DTW-align every split onto train-only references -> unnormalised model input.

    Returns:
        ``feat_aligned_input`` (:class:`ModelInput`, not normalised), ``mdl_dtw_references``
        (reference name -> ``(length, n_channels)`` list, plus the settings), and
        ``rpt_alignment_costs`` (series_id, split, label, reference, cost).
    """
    cfg = parse_config(AlignmentConfig, alignment, "ingestion.alignment")
    series = long_to_series(prm_sensor_clean)
    mi, _, costs = align(series, cfg)
    return mi, dict(mi.metadata["alignment"]), costs


def normalize_model_input(
    feat_aligned_input: ModelInput,
    rpt_outlier_summary: dict[str, Any],
    source: dict[str, Any],
    normalize_params: dict[str, Any],
) -> tuple[ModelInput, dict[str, Any]]:
    """Standardise per channel with train statistics; attach metadata -> ``mi_model_input``."""
    cfg = parse_config(NormalizeConfig, normalize_params, "ingestion.normalize")
    src = parse_config(SourceConfig, source, "ingestion.source")
    mi, scaler = normalize(feat_aligned_input, cfg.eps)
    metadata = dict(mi.metadata)
    metadata.update(
        {
            "source": src.model_dump(),
            "source_description": src.describe(),
            "outliers": {
                k: rpt_outlier_summary.get(k)
                for k in (
                    "enabled",
                    "threshold",
                    "contamination",
                    "train_action",
                    "flagged",
                    "dropped",
                    "score_convention",
                )
            },
            "outlier_model": "catalog entry mdl_outlier_filter (fitted OutlierFilter, train split only)",
            "counts": mi.counts(),
            "label_encoding": {c: k for k, c in enumerate(mi.classes)},
        }
    )
    out = ModelInput(
        X=mi.X,
        y=mi.y,
        series_ids=mi.series_ids,
        classes=mi.classes,
        channels=mi.channels,
        metadata=metadata,
    )
    stats = {"fitted_on": "train", "channels": scaler.to_dict(mi.channels)}
    return out, stats


def report_ingestion(
    int_sensor_long: pd.DataFrame,
    prm_sensor_clean: pd.DataFrame,
    feat_aligned_input: ModelInput,
    rpt_alignment_costs: pd.DataFrame,
    rpt_outlier_summary: dict[str, Any],
    reporting: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], Figure, Figure]:
    """Counts per split/class, alignment-cost histogram, before/after example plot, metrics.

    Returns:
        ``rpt_ingestion_summary`` (JSON), ``rpt_ingestion_metrics`` (kedro-mlflow metrics dict),
        ``rpt_alignment_cost_histogram`` and ``rpt_alignment_examples`` (figures).
    """
    cfg = parse_config(ReportingConfig, reporting, "ingestion.reporting")
    mi = feat_aligned_input
    counts = counts_per_split_class(
        mi.series_ids, {s: [mi.classes[k] for k in mi.y[s]] for s in SPLITS}
    )
    costs = rpt_alignment_costs
    cost_stats = {
        s: {
            "mean": float(g["cost"].mean()),
            "median": float(g["cost"].median()),
            "max": float(g["cost"].max()),
        }
        for s, g in costs.groupby("split")
        if g["cost"].notna().any()
    }
    summary = {
        "series_per_split_class": counts,
        "outliers": rpt_outlier_summary["counts"],
        "alignment_cost": cost_stats,
        "reference_choice": costs.groupby(["split", "reference"])
        .size()
        .rename("n")
        .reset_index()
        .to_dict("records"),
        "length": mi.length,
        "channels": list(mi.channels),
        "classes": list(mi.classes),
    }
    metrics: dict[str, Any] = {}
    for s in SPLITS:
        metrics[f"n_series_{s}"] = {"value": float(len(mi.y[s])), "step": 0}
        flagged = sum(v["flagged"] for v in rpt_outlier_summary["counts"].get(s, {}).values())
        metrics[f"outliers_flagged_{s}"] = {"value": float(flagged), "step": 0}
        if s in cost_stats:
            metrics[f"alignment_cost_mean_{s}"] = {"value": cost_stats[s]["mean"], "step": 0}
    metrics["outliers_dropped"] = {"value": float(len(rpt_outlier_summary["dropped"])), "step": 0}
    metrics["points_repaired"] = {"value": float(rpt_outlier_summary["points_repaired"]), "step": 0}

    hist = cost_histogram(costs, cfg.histogram_bins)
    raw = long_to_series(int_sensor_long)
    repaired = long_to_series(prm_sensor_clean)
    aligned = {str(sid): mi.X["train"][i] for i, sid in enumerate(mi.series_ids["train"])}
    refs = {
        name: np.asarray(ref)
        for name, ref in mi.metadata.get("alignment", {}).get("references", {}).items()
    }
    examples = examples_figure(
        raw,
        repaired.split("train"),
        aligned,
        refs,
        channel=min(cfg.example_channel, len(mi.channels) - 1),
        per_class=cfg.examples_per_class,
    )
    return summary, metrics, hist, examples


def run_ingestion_ablation(
    rpt_ingestion_summary: dict[str, Any], ablation: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ablation on synthetic data (outliers on/off x alignment on/off, fixed 1-NN classifier).

    It runs after the main ingestion succeeded (so a bad input writes no report at all) and
    records the main run's shape next to the ablation numbers.

    Returns ``rpt_ablation`` (JSON) and ``rpt_ablation_metrics`` (kedro-mlflow metrics dict).
    """
    cfg = parse_config(AblationConfig, ablation, "ingestion.ablation")
    main_run = {k: rpt_ingestion_summary.get(k) for k in ("length", "channels", "classes")}
    if not cfg.enabled:
        return {"enabled": False, "main_run": main_run}, {}
    result = {"enabled": True, **run_ablation(cfg), "main_run": main_run}
    metrics = {
        f"ablation_val_acc_{k}": {"value": float(v), "step": 0}
        for k, v in result["val_accuracy"].items()
    }
    return result, metrics
