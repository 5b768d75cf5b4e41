"""Thin Kedro nodes over :mod:`sensorops.modeling` (compression)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sensorops.model_input import ModelInput
from sensorops.modeling import (
    ComparisonTable,
    CompressionConfig,
    checkpoint_from_summary,
    compress_checkpoint,
    parse_config,
)
from sensorops.modeling.plots import compression_tradeoffs_figure


def build_compression_comparison(
    training_summary: dict[str, Any],
    model_input: ModelInput,
    export_summary: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Build, evaluate and gate every configured variant of the best checkpoint.

    The fp32 ONNX row reuses the parity-checked file of ``export_summary["onnx_path"]`` when
    ``export_summary["checkpoint_sha256"]`` matches the checkpoint; after a retrain without
    re-export, the fp32 ONNX (and so every int8 variant) is exported again from the new checkpoint.

    Returns:
        ``rpt_compression_comparison``: ``{"reference", "gates", "registrable", "variants": [row...]}``;
        each row is a :class:`~sensorops.modeling.comparison.ComparisonRow` (accuracy, the paired
        comparison with fp32: delta, bootstrap interval, McNemar p, fidelity, flips; size,
        params, latencies, gate verdict, registrable).
    """
    config = parse_config(CompressionConfig, params, "compression")
    table = compress_checkpoint(
        checkpoint_from_summary(training_summary),
        model_input,
        config,
        export_summary=export_summary,
    )
    return table.to_json()


def render_compression_reports(
    comparison: dict[str, Any],
) -> tuple[pd.DataFrame, str, dict[str, dict[str, float | int]]]:
    """The comparison as a CSV frame, a Markdown page and MLflow metrics."""
    table = ComparisonTable.from_json(comparison)
    return table.to_frame(), table.to_markdown(), table.metrics()


def plot_compression_tradeoffs(comparison: dict[str, Any]) -> Any:
    """``rpt_compression_plot``: accuracy against size and p50 latency, one point per variant.

    Returns:
        A matplotlib ``Figure`` (saved as ``compression_tradeoffs.png`` and logged to MLflow).
    """
    return compression_tradeoffs_figure(
        [row.to_dict() for row in ComparisonTable.from_json(comparison).rows]
    )
