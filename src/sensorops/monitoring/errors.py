"""Errors of the monitoring package (each names the file, column or key at fault)."""

from __future__ import annotations

from pathlib import Path


class LogError(ValueError):
    """The prediction log (or its feedback) breaks the contract; names the file and the problem."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


class ReferenceError_(ValueError):
    """The training reference cannot be built or does not belong to the monitored version."""


class RetrainingError(ValueError):
    """The retraining trigger refused to run (no retrain decision, no usable records)."""
