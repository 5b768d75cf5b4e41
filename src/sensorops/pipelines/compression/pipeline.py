"""Wiring of the ``compression`` pipeline."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.compression.nodes import (
    build_compression_comparison,
    plot_compression_tradeoffs,
    render_compression_reports,
)


def create_pipeline(**kwargs: Any) -> Pipeline:
    """build_compression_comparison -> render_compression_reports, plot_compression_tradeoffs."""
    return Pipeline(
        [
            Node(
                build_compression_comparison,
                inputs=[
                    "mdl_training_summary",
                    "mi_model_input",
                    "mdl_export_summary",
                    "params:compression",
                ],
                outputs="rpt_compression_comparison",
                name="build_compression_comparison",
                tags=["compression"],
            ),
            Node(
                render_compression_reports,
                inputs="rpt_compression_comparison",
                outputs=[
                    "rpt_compression_comparison_csv",
                    "rpt_compression_comparison_md",
                    "rpt_compression_metrics",
                ],
                name="render_compression_reports",
                tags=["compression"],
            ),
            Node(
                plot_compression_tradeoffs,
                inputs="rpt_compression_comparison",
                outputs="rpt_compression_plot",
                name="plot_compression_tradeoffs",
                tags=["compression"],
            ),
        ]
    )
