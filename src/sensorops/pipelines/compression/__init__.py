"""``compression`` pipeline: int8 PTQ, 4-bit QAT and pruning variants in one gated comparison."""

from sensorops.pipelines.compression.pipeline import create_pipeline

__all__ = ["create_pipeline"]
