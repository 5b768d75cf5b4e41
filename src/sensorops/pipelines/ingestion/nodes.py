"""Thin Kedro nodes of the ``ingestion`` pipeline over :mod:`sensorops.timeseries`.

Each node turns its parameter slice into a typed config on its first line, returns new objects
and never mutates its inputs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sensorops import timeseries as ts
from sensorops.metrics import as_mlflow_metrics
from sensorops.model_input import ModelInput
from sensorops.timeseries import prepare, summaries
from sensorops.timeseries.ablation import run_ablation
from sensorops.timeseries.reporting import cost_histogram


def load_raw_source(source: dict[str, Any]) -> pd.DataFrame:
    """Materialise the configured source (BasicMotions, long table, .ts, synthetic) as ``raw_sensor_long``."""
    cfg = ts.parse_config(ts.SourceConfig, source, "ingestion.source")
    return ts.load_source(cfg)


def check_raw_contract(
    raw_sensor_long: pd.DataFrame, source: dict[str, Any], contract: dict[str, Any]
) -> pd.DataFrame:
    """Check the raw table against the contract; errors name the source file, column or series."""
    cfg = ts.parse_config(ts.ContractConfig, contract, "ingestion.contract")
    src = ts.parse_config(ts.SourceConfig, source, "ingestion.source")
    return ts.check_contract(raw_sensor_long, cfg, src.describe())


def split_series(int_sensor_checked: pd.DataFrame, split: dict[str, Any]) -> pd.DataFrame:
    """Assign train/val/test per series (stratified, seeded) -> ``int_sensor_long``."""
    cfg = ts.parse_config(ts.SplitConfig, split, "ingestion.split")
    return ts.assign_splits(int_sensor_checked, cfg)


def handle_outliers(
    int_sensor_long: pd.DataFrame, outliers: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Repair dropouts and spikes, score series with IForest (fitted on train), drop/flag outliers
    -> ``prm_sensor_clean``, ``mdl_outlier_filter`` (``{"config", "filter"}``),
    ``rpt_outlier_series`` (per series: score, is_outlier, action, repairs), ``rpt_outlier_summary``."""
    cfg = ts.parse_config(ts.OutlierConfig, outliers, "ingestion.outliers")
    result, filt = prepare.clean(int_sensor_long, cfg)
    repaired = summaries.with_original_steps(ts.series_to_long(result.series), int_sensor_long)
    model = {"config": cfg.model_dump(), "filter": filt}
    return repaired, model, result.report, summaries.outlier_summary(result.report, cfg, filt)


def align_series(
    prm_sensor_clean: pd.DataFrame, alignment: dict[str, Any]
) -> tuple[ModelInput, dict[str, Any], pd.DataFrame]:
    """DTW-align every split onto train-only references -> ``feat_aligned_input`` (not normalised),
    ``mdl_dtw_references`` (name -> ``(length, n_channels)`` list, plus settings) and
    ``rpt_alignment_costs`` (series_id, split, label, reference, cost)."""
    cfg = ts.parse_config(ts.AlignmentConfig, alignment, "ingestion.alignment")
    series = ts.long_to_series(prm_sensor_clean)
    mi, _, costs = prepare.align(series, cfg)
    return mi, dict(mi.metadata["alignment"]), costs


def normalize_model_input(
    feat_aligned_input: ModelInput,
    rpt_outlier_summary: dict[str, Any],
    source: dict[str, Any],
    normalize_params: dict[str, Any],
) -> tuple[ModelInput, dict[str, Any]]:
    """Standardise per channel with train statistics; attach metadata -> ``mi_model_input``."""
    cfg = ts.parse_config(ts.NormalizeConfig, normalize_params, "ingestion.normalize")
    src = ts.parse_config(ts.SourceConfig, source, "ingestion.source")
    mi, scaler = prepare.normalize(feat_aligned_input, cfg.eps)
    stats = {"fitted_on": "train", "channels": scaler.to_dict(mi.channels)}
    return summaries.with_ingestion_metadata(mi, src, rpt_outlier_summary), stats


def report_ingestion(
    int_sensor_long: pd.DataFrame,
    prm_sensor_clean: pd.DataFrame,
    feat_aligned_input: ModelInput,
    rpt_alignment_costs: pd.DataFrame,
    rpt_outlier_summary: dict[str, Any],
    reporting: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], Figure, Figure]:
    """``rpt_ingestion_summary`` (counts per split/class...), ``rpt_ingestion_metrics``, and the
    figures ``rpt_alignment_cost_histogram`` and ``rpt_alignment_examples`` (before/after)."""
    cfg = ts.parse_config(ts.ReportingConfig, reporting, "ingestion.reporting")
    mi = feat_aligned_input
    summary = summaries.ingestion_summary(mi, rpt_alignment_costs, rpt_outlier_summary)
    metrics = summaries.ingestion_metrics(mi, summary, rpt_outlier_summary)
    hist = cost_histogram(rpt_alignment_costs, cfg.histogram_bins)
    examples = summaries.alignment_examples(int_sensor_long, prm_sensor_clean, mi, cfg)
    return summary, metrics, hist, examples


def run_ingestion_ablation(
    rpt_ingestion_summary: dict[str, Any], ablation: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``rpt_ablation`` and its metrics: outliers on/off x alignment on/off on synthetic data, fixed
    1-NN classifier. Runs after the main ingestion succeeded (a bad input writes no report)."""
    cfg = ts.parse_config(ts.AblationConfig, ablation, "ingestion.ablation")
    main_run = {k: rpt_ingestion_summary.get(k) for k in ("length", "channels", "classes")}
    if not cfg.enabled:
        return {"enabled": False, "main_run": main_run}, {}
    result = {"enabled": True, **run_ablation(cfg), "main_run": main_run}
    metrics = as_mlflow_metrics(
        {f"ablation_val_acc_{k}": v for k, v in result["val_accuracy"].items()}
    )
    return result, metrics
