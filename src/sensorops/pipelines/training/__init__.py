"""The ``training`` pipeline: launch DDP training on the model input, then evaluate on the test split."""

from sensorops.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
