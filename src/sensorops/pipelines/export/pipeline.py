"""Wiring of the ``export`` pipeline."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.export.nodes import export_onnx_model


def create_pipeline(**kwargs: Any) -> Pipeline:
    """export_onnx_model: mdl_training_summary + mi_model_input -> mdl_export_summary."""
    return Pipeline(
        [
            Node(
                export_onnx_model,
                inputs=["mdl_training_summary", "mi_model_input", "params:export"],
                outputs=["mdl_export_summary", "rpt_export_metrics"],
                name="export_onnx_model",
                tags=["export"],
            )
        ]
    )
