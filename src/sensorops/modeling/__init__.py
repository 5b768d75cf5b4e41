"""Compression (int8 PTQ, 4-bit QAT, pruning) and ONNX export with parity checks.

Library code: no Kedro imports. The Kedro nodes in ``sensorops.pipelines.export`` and
``sensorops.pipelines.compression`` call :func:`export_checkpoint` and
:func:`compress_checkpoint`.
"""

from sensorops.modeling.comparison import ComparisonTable, VariantResult, build_comparison
from sensorops.modeling.config import (
    SUPPORTED_OPSETS,
    VARIANTS,
    CompressionConfig,
    ExportConfig,
    parse_config,
)
from sensorops.modeling.errors import (
    ExportError,
    GateError,
    ModelingError,
    ParityError,
    PruningError,
)
from sensorops.modeling.workflow import (
    checkpoint_from_summary,
    compress_checkpoint,
    export_checkpoint,
)

__all__ = [
    "SUPPORTED_OPSETS",
    "VARIANTS",
    "ComparisonTable",
    "CompressionConfig",
    "ExportConfig",
    "ExportError",
    "GateError",
    "ModelingError",
    "ParityError",
    "PruningError",
    "VariantResult",
    "build_comparison",
    "checkpoint_from_summary",
    "compress_checkpoint",
    "export_checkpoint",
    "parse_config",
]
