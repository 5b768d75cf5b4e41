"""``export`` pipeline: ONNX export of the best training checkpoint with a parity check."""

from sensorops.pipelines.export.pipeline import create_pipeline

__all__ = ["create_pipeline"]
