"""Kedro dataset that turns a node's ``dict[str, str]`` output into tags on the active MLflow run."""

from __future__ import annotations

import logging
from typing import Any

from kedro.io import AbstractDataset

logger = logging.getLogger(__name__)


class MlflowTagsDataset(AbstractDataset[dict[str, str], dict[str, str]]):
    """Save-only dataset: ``save({"dq.tier1": "warn"})`` sets those tags on the active run.

    Loading returns the tags saved in this process (so downstream nodes may still consume them).
    Without an active run it logs a warning and only keeps the tags in memory.
    """

    def __init__(self, prefix: str = "", metadata: dict[str, Any] | None = None) -> None:
        self._prefix = prefix
        self._tags: dict[str, str] = {}
        self.metadata = metadata

    def load(self) -> dict[str, str]:
        return dict(self._tags)

    def save(self, data: dict[str, str]) -> None:
        import mlflow

        if not isinstance(data, dict):
            raise TypeError(f"MlflowTagsDataset expects a dict of tags, got {type(data).__name__}")
        tags = {f"{self._prefix}{k}": str(v) for k, v in data.items()}
        self._tags.update(tags)
        if mlflow.active_run() is None:
            logger.warning("no active MLflow run; tags %s not logged", sorted(tags))
            return
        mlflow.set_tags(tags)

    def _exists(self) -> bool:
        return bool(self._tags)

    def _describe(self) -> dict[str, Any]:
        return {"prefix": self._prefix}
