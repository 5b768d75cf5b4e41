"""Wiring of the ``promotion`` pipeline."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.promotion.nodes import promote_to_staging, register_models


def create_pipeline(**kwargs: Any) -> Pipeline:
    """register_models -> promote_to_staging."""
    return Pipeline(
        [
            Node(
                register_models,
                inputs=[
                    "mdl_export_summary",
                    "rpt_compression_comparison",
                    "rpt_dq_summary",
                    "rpt_evaluation",
                    "mdl_training_summary",
                    "mi_model_input",
                    "params:promotion",
                    "mdl_outlier_filter",
                    "mdl_dtw_references",
                    "mdl_normalization_stats",
                ],
                outputs="mdl_registered_versions",
                name="register_models",
                tags=["promotion", "registry"],
            ),
            Node(
                promote_to_staging,
                inputs=[
                    "mdl_registered_versions",
                    "mi_model_input",
                    "params:promotion",
                    "params:serving",
                    "int_sensor_long",
                ],
                outputs="rpt_promotion",
                name="promote_to_staging",
                tags=["promotion", "registry"],
            ),
        ]
    )
