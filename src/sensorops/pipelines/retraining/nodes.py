"""Thin Kedro nodes of the ``retraining`` pipeline over :mod:`sensorops.monitoring.retraining`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from sensorops import timeseries as ts
from sensorops.model_input import ModelInput
from sensorops.monitoring import (
    RetrainingError,
    load_monitoring_config,
    load_retraining_config,
    publish,
    read_window,
)
from sensorops.monitoring import retraining as rt
from sensorops.pipelines.monitoring.nodes import ensure_reference

logger = logging.getLogger(__name__)
KEYS = ("series_id", "t", "label", "split")


def build_retraining_set(
    source: dict[str, Any],
    split: dict[str, Any],
    monitoring: dict[str, Any],
    retraining: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Original data + labelled, quality-passing log records -> ``raw_sensor_long`` and lineage."""
    mcfg = load_monitoring_config(monitoring)
    rcfg = load_retraining_config(retraining)
    trigger = rt.check_trigger(
        Path(mcfg.report_dir) / "report.json", mcfg.force_retrain, rcfg.require_decision
    )
    window = read_window(
        mcfg.log_dir, mcfg.window, feedback_dir=mcfg.feedback_dir, model=mcfg.model
    )
    original = ts.load_source(ts.parse_config(ts.SourceConfig, source, "ingestion.source"))
    channels = [c for c in original.columns if c not in KEYS]
    if window.n_channels != len(channels):
        raise RetrainingError(
            f"the log has {window.n_channels} channels per record; the training source has "
            f"{len(channels)} ({channels})"
        )
    rows, counts = rt.log_training_rows(window, channels, rcfg)
    if counts["joined"] < rcfg.min_records:
        raise RetrainingError(
            f"only {counts['joined']} labelled, quality-passing log record(s) with raw input in "
            f"the window (< retraining.min_records={rcfg.min_records}); counts {counts}"
        )
    combined = rt.combine(original, rows, ts.parse_config(ts.SplitConfig, split, "ingestion.split"))
    record = rt.lineage(window, counts, combined, trigger)
    logger.info(
        "retraining set: %d original + %d log series (%s)",
        original["series_id"].nunique(),
        counts["joined"],
        record["log_series_per_split"],
    )
    return combined, record


def tag_candidates(
    registered: dict[str, Any],
    lineage: dict[str, Any],
    int_sensor_long: pd.DataFrame,
    mi_model_input: ModelInput,
    monitoring: dict[str, Any],
) -> dict[str, Any]:
    """Lineage tags on every version the run registered; their monitoring references."""
    mcfg = load_monitoring_config(monitoring)
    c = publish.client()
    tags = rt.lineage_tags(lineage)
    out = []
    for i, v in enumerate(registered.get("versions", [])):
        name, version = v["name"], str(v["version"])
        for k, val in tags.items():
            c.set_model_version_tag(name, version, k, val)
        if i == 0:  # the base (parity-checked) variant: what the rollout controller takes on
            mv = c.get_model_version(name, version)
            cfg = mcfg.model_copy(update={"model": name, "version": version})
            ensure_reference(cfg, version, dict(mv.tags), int_sensor_long, mi_model_input)
        out.append(
            {
                "name": name,
                "version": version,
                "variant": v.get("variant"),
                "test_accuracy": v.get("test_accuracy"),
            }
        )
    return {"versions": out, "tags": tags, "lineage": lineage}
