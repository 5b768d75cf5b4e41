"""Pipeline registry: explicit imports, no ``find_pipelines``.

``kedro run --pipelines X`` makes ``find_pipelines()`` import only ``pipelines/X``, which breaks
composites built from its output; explicit imports keep ``__default__`` and every single
pipeline available whichever flag (``--pipeline`` or ``--pipelines``) the user types.
"""

from __future__ import annotations

import importlib

from kedro.pipeline import Pipeline

# Execution order of the end-to-end workflow.
PIPELINE_ORDER: tuple[str, ...] = (
    "ingestion",
    "data_quality",
    "training",
    "compression",
    "export",
    "promotion",
)


def _load(name: str) -> Pipeline | None:
    """Import ``sensorops.pipelines.<name>.pipeline``; None only if that package is absent."""
    module_name = f"sensorops.pipelines.{name}.pipeline"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, f"sensorops.pipelines.{name}"):
            return None
        raise
    return module.create_pipeline()


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline by name, plus ``__default__`` = all of them in workflow order."""
    pipelines: dict[str, Pipeline] = {}
    for name in PIPELINE_ORDER:
        pipeline = _load(name)
        if pipeline is not None:
            pipelines[name] = pipeline
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
