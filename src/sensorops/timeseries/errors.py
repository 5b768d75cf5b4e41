"""Exceptions raised by the time-series ingestion library.

Every error is a :class:`ValueError` subclass whose message names the file, column, series or
configuration key at fault and states what was expected.
"""

from __future__ import annotations

from sensorops.config_validation import ConfigError


class IngestionError(ValueError):
    """Base class for ingestion errors."""


class SourceError(IngestionError):
    """A raw source file is missing, empty, corrupt or unreadable."""


class ContractError(IngestionError):
    """The long-format table breaks the raw-data contract (columns, types, keys, lengths)."""


class IngestionConfigError(IngestionError, ConfigError):
    """A configuration dict (Kedro parameters) has an unknown key or an invalid value."""
