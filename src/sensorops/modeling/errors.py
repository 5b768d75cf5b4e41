"""Errors raised by :mod:`sensorops.modeling` (all are ``ValueError`` subclasses)."""

from __future__ import annotations

from sensorops.config_validation import ConfigError


class ModelingError(ValueError):
    """Base class: bad configuration or input for export/compression."""


class ModelingConfigError(ModelingError, ConfigError):
    """``params:export`` or ``params:compression`` has an unknown key or an invalid value."""


class ExportError(ModelingError):
    """The ONNX export failed or produced a graph that does not pass ``onnx.checker``."""


class ParityError(ModelingError):
    """Torch and ONNX Runtime outputs disagree beyond the configured tolerance."""


class GateError(ModelingError):
    """A compression gate is misconfigured."""


class PruningError(ModelingError):
    """The model has nothing this pruner knows how to prune, or the amount is invalid."""
