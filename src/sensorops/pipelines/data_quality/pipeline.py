"""``data_quality``: gate the raw long table and the model input in three tiers, then report."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.data_quality.nodes import (
    report_data_quality,
    track_model_input,
    track_raw_input,
    validate_model_input,
    validate_raw_data,
)


def create_pipeline(**kwargs: Any) -> Pipeline:
    """Inputs ``int_sensor_long`` and ``mi_model_input``; outputs ``rpt_dq_*`` (summary, report, metrics...)."""
    return Pipeline(
        [
            Node(
                track_raw_input,
                inputs="int_sensor_long",
                outputs="rpt_dq_raw_mlflow_input",
                name="track_raw_input",
                tags=["data_quality", "tracking"],
            ),
            Node(
                track_model_input,
                inputs="mi_model_input",
                outputs="rpt_dq_model_input_mlflow_input",
                name="track_model_input",
                tags=["data_quality", "tracking"],
            ),
            Node(
                validate_raw_data,
                inputs=["int_sensor_long", "params:data_quality"],
                outputs="rpt_dq_raw_gate",
                name="validate_raw_data",
                tags=["data_quality", "gate"],
            ),
            Node(
                validate_model_input,
                inputs=["mi_model_input", "params:data_quality"],
                outputs="rpt_dq_model_input_gate",
                name="validate_model_input",
                tags=["data_quality", "gate"],
            ),
            Node(
                report_data_quality,
                inputs=["rpt_dq_raw_gate", "rpt_dq_model_input_gate", "mi_model_input"],
                outputs=[
                    "rpt_dq_summary",
                    "rpt_dq_validation_report",
                    "rpt_dq_metrics",
                    "rpt_dq_tags",
                    "rpt_dq_data_docs",
                    "rpt_dq_correlation",
                ],
                name="report_data_quality",
                tags=["data_quality", "reporting"],
            ),
        ]
    )
