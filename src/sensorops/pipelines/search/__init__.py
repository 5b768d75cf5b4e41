"""The ``search`` pipeline: Optuna architecture/hyperparameter search over the training code."""

from sensorops.pipelines.search.pipeline import create_pipeline

__all__ = ["create_pipeline"]
