"""Pipeline registry: explicit imports, no ``find_pipelines``.

``kedro run --pipelines X`` makes ``find_pipelines()`` import only ``pipelines/X``, which breaks
composites built from its output; explicit imports keep ``__default__`` and every single
pipeline available whichever flag (``--pipeline`` or ``--pipelines``) the user types.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from sensorops.pipelines.compression import pipeline as compression
from sensorops.pipelines.data_quality import pipeline as data_quality
from sensorops.pipelines.export import pipeline as export
from sensorops.pipelines.ingestion import pipeline as ingestion
from sensorops.pipelines.monitoring import pipeline as monitoring
from sensorops.pipelines.promotion import pipeline as promotion
from sensorops.pipelines.retraining import pipeline as retraining
from sensorops.pipelines.search import pipeline as search
from sensorops.pipelines.training import pipeline as training


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline by name (in workflow order), plus ``__default__`` = all of them but
    ``search`` (an Optuna study is run on purpose: ``kedro run --pipeline=search``), ``monitoring``
    (over the prediction log) and ``retraining`` (the whole chain on the log's labelled records)."""
    pipelines = {
        "ingestion": ingestion.create_pipeline(),
        "data_quality": data_quality.create_pipeline(),
        "training": training.create_pipeline(),
        "compression": compression.create_pipeline(),
        "export": export.create_pipeline(),
        "promotion": promotion.create_pipeline(),
    }
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines["search"] = search.create_pipeline()
    pipelines["monitoring"] = monitoring.create_pipeline()
    pipelines["retraining"] = retraining.create_pipeline()
    return pipelines
