"""Wiring of the ``training`` pipeline."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Node, Pipeline

from sensorops.pipelines.training.nodes import evaluate_model, plot_training_curves, train_model


def create_pipeline(**kwargs: Any) -> Pipeline:
    """train_model (after the data-quality gate) -> evaluate_model, plot_training_curves."""
    return Pipeline(
        [
            Node(
                train_model,
                inputs=["mi_model_input", "rpt_dq_summary", "params:training.trainer"],
                outputs=["mdl_training_summary", "rpt_training_metrics"],
                name="train_model",
                tags=["training"],
            ),
            Node(
                evaluate_model,
                inputs=[
                    "mdl_training_summary",
                    "mi_model_input",
                    "int_sensor_long",
                    "params:training.evaluation",
                ],
                outputs=[
                    "rpt_evaluation",
                    "mo_test_predictions",
                    "rpt_classification_report",
                    "rpt_confusion_matrix",
                    "rpt_evaluation_metrics",
                ],
                name="evaluate_model",
                tags=["training", "evaluation"],
            ),
            Node(
                plot_training_curves,
                inputs="mdl_training_summary",
                outputs="rpt_training_curves",
                name="plot_training_curves",
                tags=["training"],
            ),
        ]
    )
