"""Nodes of the ``data_quality`` pipeline: thin wrappers over :mod:`sensorops.quality`.

The gate nodes raise :class:`sensorops.quality.DataQualityError` when a tier whose action is
``fail`` fails; that stops the run. MLflow logging happens in the catalog datasets.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sensorops.model_input import ModelInput, model_input_digests
from sensorops.quality import StageResult, load_config, run_gate_on_model_input, run_gate_on_table
from sensorops.quality import report as dq_report


def track_raw_input(int_sensor_long: pd.DataFrame) -> pd.DataFrame:
    """Hand the raw long table to the MLflow input dataset (logged with its digest); unchanged."""
    return int_sensor_long


def track_model_input(mi_model_input: ModelInput) -> ModelInput:
    """Hand the model input to the MLflow input dataset (logged with its digest); unchanged."""
    return mi_model_input


def validate_raw_data(int_sensor_long: pd.DataFrame, params: dict[str, Any]) -> StageResult:
    """Gate: tiers 1-3 on the contract-checked long table (stage ``raw``); raises on a ``fail`` tier."""
    config = load_config(params)
    return run_gate_on_table(int_sensor_long, config)


def validate_model_input(mi_model_input: ModelInput, params: dict[str, Any]) -> StageResult:
    """Gate: tiers 1-3 on the model input (stage ``model_input``); raises on a ``fail`` tier."""
    config = load_config(params)
    return run_gate_on_model_input(mi_model_input, config)


def report_data_quality(
    rpt_dq_raw_gate: StageResult, rpt_dq_model_input_gate: StageResult, mi_model_input: ModelInput
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, str], str, pd.DataFrame]:
    """Summary JSON, GE validation report, MLflow metrics and tags, Data Docs folder, correlations.

    The summary records the digests of the validated model input (``model_input_digests``), so
    that training and promotion can refuse a summary that belongs to other data.

    Returns:
        ``(summary, validation_report, metrics, tags, data_docs_dir, correlation)``.
    """
    results = [rpt_dq_raw_gate, rpt_dq_model_input_gate]
    docs = dq_report.data_docs_dir(results)
    if docs is None:
        raise ValueError("no data-quality stage built Data Docs (are both stages disabled?)")
    summary = {
        **dq_report.summary(results),
        "model_input_digests": model_input_digests(mi_model_input),
    }
    return (
        summary,
        dq_report.validation_report(results),
        dq_report.metrics(results),
        dq_report.tags(results),
        docs,
        dq_report.correlation_table(results),
    )
