"""Thin Kedro nodes over :mod:`sensorops.modeling` (export)."""

from __future__ import annotations

from typing import Any

from sensorops.contracts import ExportSummary
from sensorops.model_input import ModelInput
from sensorops.modeling import (
    ExportConfig,
    checkpoint_from_summary,
    export_checkpoint,
    parse_config,
)


def export_onnx_model(
    training_summary: dict[str, Any], model_input: ModelInput, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Export ``training_summary["best_checkpoint"]`` to ONNX and check torch/ORT parity.

    Returns:
        ``(mdl_export_summary, rpt_export_metrics)``: the summary (``onnx_path``, ``opset``,
        ``parity_passed``, ``parity_max_abs_diff``, ``execution_provider``...) and MLflow metrics.

    Raises:
        ParityError: parity failed (the node fails with the numbers).
    """
    config = parse_config(ExportConfig, params, "export")
    summary = export_checkpoint(checkpoint_from_summary(training_summary), model_input, config)
    return summary, ExportSummary.from_dict(summary).metrics()
