"""Wiring of the ``search`` pipeline (not part of ``__default__``: run it on purpose)."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.search.nodes import report_search, run_search


def create_pipeline(**kwargs: Any) -> Pipeline:
    """run_search (after the data-quality gate) -> report_search."""
    return Pipeline(
        [
            Node(
                run_search,
                inputs=[
                    "mi_model_input",
                    "rpt_dq_summary",
                    "params:search",
                    "params:training.trainer",
                ],
                outputs=["rpt_search_trials", "rpt_search_summary"],
                name="run_search",
                tags=["search"],
            ),
            Node(
                report_search,
                inputs=["rpt_search_trials", "rpt_search_summary", "params:search"],
                outputs=[
                    "rpt_search_pareto",
                    "rpt_search_pareto_plot",
                    "rpt_search_best_parameters",
                    "rpt_search_metrics",
                ],
                name="report_search",
                tags=["search"],
            ),
        ]
    )
