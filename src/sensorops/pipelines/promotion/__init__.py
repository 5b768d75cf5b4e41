"""``promotion`` pipeline: register the exported/compressed models and promote one to staging."""

from sensorops.pipelines.promotion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
