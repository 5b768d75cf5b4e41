"""Kedro adapter of the three-tier data-quality gate (library: :mod:`sensorops.quality`)."""

from sensorops.pipelines.data_quality.pipeline import create_pipeline

__all__ = ["create_pipeline"]
