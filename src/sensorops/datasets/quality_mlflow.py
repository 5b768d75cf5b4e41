"""Save-only Kedro datasets of the data-quality pipeline that write to the active MLflow run."""

from __future__ import annotations

from typing import Any

import pandas as pd
from kedro.io import AbstractDataset

from sensorops.model_input import ModelInput
from sensorops.quality.tracking import log_dataset_input, log_directory


class MlflowInputDataset(AbstractDataset[Any, Any]):
    """``save(data)`` logs a long table or a ModelInput as an MLflow dataset input (with digest).

    Example catalog entry::

        rpt_dq_raw_input:
          type: sensorops.datasets.quality_mlflow.MlflowInputDataset
          name: int_sensor_long
          context: data_quality.raw
          source: data/02_intermediate/sensor_long.parquet

    Loading returns the digest saved in this process (``None`` before a save or without a run).
    """

    def __init__(
        self,
        name: str,
        context: str = "data_quality",
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._context = context
        self._source = source
        self._digest: str | None = None
        self.metadata = metadata

    def load(self) -> str | None:
        return self._digest

    def save(self, data: pd.DataFrame | ModelInput) -> None:
        self._digest = log_dataset_input(
            data, name=self._name, context=self._context, source=self._source
        )

    def _exists(self) -> bool:
        return self._digest is not None

    def _describe(self) -> dict[str, Any]:
        return {"name": self._name, "context": self._context, "source": self._source}


class MlflowArtifactDirDataset(AbstractDataset[str, str]):
    """``save(path)`` logs the folder ``path`` (e.g. the Data Docs site) as run artifacts.

    Example catalog entry::

        rpt_dq_data_docs:
          type: sensorops.datasets.quality_mlflow.MlflowArtifactDirDataset
          artifact_path: data_docs

    Loading returns the last saved folder path.
    """

    def __init__(self, artifact_path: str, metadata: dict[str, Any] | None = None) -> None:
        self._artifact_path = artifact_path
        self._path: str | None = None
        self.metadata = metadata

    def load(self) -> str:
        if self._path is None:
            raise FileNotFoundError(f"nothing saved yet to artifact path {self._artifact_path!r}")
        return self._path

    def save(self, data: str) -> None:
        if not isinstance(data, str):
            raise TypeError(
                f"MlflowArtifactDirDataset expects a folder path (str); got {type(data).__name__}"
            )
        log_directory(data, self._artifact_path)
        self._path = data

    def _exists(self) -> bool:
        return self._path is not None

    def _describe(self) -> dict[str, Any]:
        return {"artifact_path": self._artifact_path}
