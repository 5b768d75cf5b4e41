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


class NotFittedError(IngestionError, AttributeError):
    """An estimator's ``transform`` was called before ``fit`` (as scikit-learn's NotFittedError)."""


class ChannelCountError(IngestionError):
    """``transform`` got series with another number of channels than ``fit`` saw."""


def check_is_fitted(estimator: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` naming the estimator unless ``attribute`` is set."""
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise NotFittedError(
            f"this {name} is not fitted yet; call {name}.fit(train) before transform"
        )


def check_channels(estimator: object, expected: int, got: int, what: str = "series") -> None:
    """Raise :class:`ChannelCountError` when ``got`` differs from the fitted ``expected``."""
    if got != expected:
        raise ChannelCountError(
            f"{type(estimator).__name__} was fitted on {expected} channel(s); "
            f"transform got {what} with {got}"
        )
