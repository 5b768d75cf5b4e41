"""Wiring of the ``ingestion`` pipeline.

load_raw_source -> check_raw_contract -> split_series -> handle_outliers -> align_series
-> normalize_model_input, plus report_ingestion and run_ingestion_ablation (tag ``ablation``).
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.ingestion.nodes import (
    align_series,
    check_raw_contract,
    handle_outliers,
    load_raw_source,
    normalize_model_input,
    report_ingestion,
    run_ingestion_ablation,
    split_series,
)

TAG = "ingestion"


def create_pipeline(**kwargs: Any) -> Pipeline:
    """The ingestion pipeline: raw source in, ``mi_model_input`` and reports out."""
    return Pipeline(
        [
            Node(
                load_raw_source,
                inputs="params:ingestion.source",
                outputs="raw_sensor_long",
                name="load_raw_source",
                tags=[TAG],
            ),
            Node(
                check_raw_contract,
                inputs=["raw_sensor_long", "params:ingestion.source", "params:ingestion.contract"],
                outputs="int_sensor_checked",
                name="check_raw_contract",
                tags=[TAG],
            ),
            Node(
                split_series,
                inputs=["int_sensor_checked", "params:ingestion.split"],
                outputs="int_sensor_long",
                name="split_series",
                tags=[TAG],
            ),
            Node(
                handle_outliers,
                inputs=["int_sensor_long", "params:ingestion.outliers"],
                outputs=[
                    "prm_sensor_clean",
                    "mdl_outlier_filter",
                    "rpt_outlier_series",
                    "rpt_outlier_summary",
                ],
                name="handle_outliers",
                tags=[TAG],
            ),
            Node(
                align_series,
                inputs=["prm_sensor_clean", "params:ingestion.alignment"],
                outputs=["feat_aligned_input", "mdl_dtw_references", "rpt_alignment_costs"],
                name="align_series",
                tags=[TAG],
            ),
            Node(
                normalize_model_input,
                inputs=[
                    "feat_aligned_input",
                    "rpt_outlier_summary",
                    "params:ingestion.source",
                    "params:ingestion.normalize",
                ],
                outputs=["mi_model_input", "mdl_normalization_stats"],
                name="normalize_model_input",
                tags=[TAG],
            ),
            Node(
                report_ingestion,
                inputs=[
                    "int_sensor_long",
                    "prm_sensor_clean",
                    "feat_aligned_input",
                    "rpt_alignment_costs",
                    "rpt_outlier_summary",
                    "params:ingestion.reporting",
                ],
                outputs=[
                    "rpt_ingestion_summary",
                    "rpt_ingestion_metrics",
                    "rpt_alignment_cost_histogram",
                    "rpt_alignment_examples",
                ],
                name="report_ingestion",
                tags=[TAG, "reporting"],
            ),
            Node(
                run_ingestion_ablation,
                inputs=["rpt_ingestion_summary", "params:ingestion.ablation"],
                outputs=["rpt_ablation", "rpt_ablation_metrics"],
                name="run_ingestion_ablation",
                tags=[TAG, "reporting", "ablation"],
            ),
        ]
    )
