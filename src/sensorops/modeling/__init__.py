"""Compression (int8 PTQ, 4-bit QAT, pruning) and ONNX export with parity checks.

Library code: no Kedro imports. The Kedro nodes in ``sensorops.pipelines.export`` and
``sensorops.pipelines.compression`` call :func:`export_checkpoint` and
:func:`compress_checkpoint`.

The names are loaded lazily (PEP 562), so ``sensorops.modeling.comparison`` (the comparison
contract the registry reads) and ``sensorops.modeling.config`` import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ComparisonRow": "sensorops.modeling.comparison",
    "ComparisonTable": "sensorops.modeling.comparison",
    "VariantResult": "sensorops.modeling.comparison",
    "build_comparison": "sensorops.modeling.comparison",
    "SUPPORTED_OPSETS": "sensorops.modeling.config",
    "VARIANTS": "sensorops.modeling.config",
    "CompressionConfig": "sensorops.modeling.config",
    "ExportConfig": "sensorops.modeling.config",
    "parse_config": "sensorops.modeling.config",
    "ExportError": "sensorops.modeling.errors",
    "GateError": "sensorops.modeling.errors",
    "ModelingError": "sensorops.modeling.errors",
    "ParityError": "sensorops.modeling.errors",
    "PruningError": "sensorops.modeling.errors",
    "checkpoint_from_summary": "sensorops.modeling.workflow",
    "compress_checkpoint": "sensorops.modeling.workflow",
    "export_checkpoint": "sensorops.modeling.workflow",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sensorops.modeling' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
