"""Errors raised by the registry package; each maps to one CLI exit code.

========================  =========  ==========================================================
error                     exit code  meaning
========================  =========  ==========================================================
:class:`GateRefused`      1          a promotion gate said no; nothing was changed
:class:`NotFoundError`    2          unknown registered model, version or alias
:class:`RegistryConfigError`  2      bad parameters / arguments
:class:`ServerUnreachable`  3        the tracking server does not answer (or the DB is missing)
:class:`LockBusy`         4          another promotion holds the model's lease; retry later
:class:`TransitionFailed` 5          a write failed mid-transition; partial changes were undone
:class:`RegistrationFailed` 5        registering variants failed; the versions it made were deleted
========================  =========  ==========================================================
"""

from __future__ import annotations

from typing import Any

from sensorops.config_validation import ConfigError


class RegistryError(Exception):
    """Base class of every registry error."""

    exit_code: int = 5


class RegistryConfigError(RegistryError, ConfigError):
    """A parameter or argument is invalid; the message names the key and the valid options."""

    exit_code = 2


class NotFoundError(RegistryError, LookupError):
    """A registered model, version or alias does not exist."""

    exit_code = 2


class ServerUnreachable(RegistryError, ConnectionError):
    """The tracking server (or the sqlite database) cannot be reached."""

    exit_code = 3


class GateRefused(RegistryError):
    """A promotion was refused by a gate; the registry was not changed.

    Attributes:
        gate: name of the first gate that failed (e.g. ``"no_regression"``).
        numbers: the numbers the gate compared.
        report: the full :class:`~sensorops.registry.gates.GateReport` as a dict.
    """

    exit_code = 1

    def __init__(self, message: str, gate: str, numbers: dict[str, Any], report: dict[str, Any]):
        super().__init__(message)
        self.gate = gate
        self.numbers = numbers
        self.report = report


class LockBusy(RegistryError):
    """Another process holds the promotion lease of this registered model."""

    exit_code = 4


class TransitionFailed(RegistryError):
    """A transition failed part-way; the changes already made were reverted."""

    exit_code = 5


class RegistrationFailed(RegistryError):
    """Registering a set of variants failed part-way; the versions it had created were deleted."""

    exit_code = 5
