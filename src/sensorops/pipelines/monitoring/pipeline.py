"""Wiring of the ``monitoring`` pipeline.

read_log_window -> version_reference -> check_window -> publish_report
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.monitoring.nodes import (
    check_window,
    publish_report,
    read_log_window,
    version_reference,
)

TAG = "monitoring"


def create_pipeline(**kwargs: Any) -> Pipeline:
    """The window of the prediction log in, the report, dashboard, run and version tags out."""
    return Pipeline(
        [
            Node(
                read_log_window,
                inputs="params:monitoring",
                outputs="mon_log_window",
                name="read_log_window",
                tags=[TAG],
            ),
            Node(
                version_reference,
                inputs=["mon_log_window", "int_sensor_long", "mi_model_input", "params:monitoring"],
                outputs="mon_reference",
                name="version_reference",
                tags=[TAG],
            ),
            Node(
                check_window,
                inputs=[
                    "mon_log_window",
                    "mon_reference",
                    "params:monitoring",
                    "params:data_quality",
                ],
                outputs=["rpt_monitoring", "rpt_monitoring_dashboard", "rpt_monitoring_metrics"],
                name="check_window",
                tags=[TAG],
            ),
            Node(
                publish_report,
                inputs=["rpt_monitoring", "params:monitoring"],
                outputs="rpt_monitoring_run",
                name="publish_report",
                tags=[TAG],
            ),
        ]
    )
