"""The ``ingestion`` pipeline: raw sensor recordings -> clean, aligned, normalized model input."""

from sensorops.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
