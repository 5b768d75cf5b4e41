"""Kedro dataset for :class:`sensorops.model_input.ModelInput` (an ``.npz`` file, no pickle)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset

from sensorops.model_input import ModelInput, load_model_input, save_model_input


class ModelInputDataset(AbstractDataset[ModelInput, ModelInput]):
    """Load and save the aligned model input arrays atomically.

    Example catalog entry::

        mi_model_input:
          type: sensorops.datasets.ModelInputDataset
          filepath: data/05_model_input/model_input.npz
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> ModelInput:
        return load_model_input(Path(self._filepath))

    def save(self, data: ModelInput) -> None:
        if not isinstance(data, ModelInput):
            raise TypeError(
                f"{self._filepath}: expected a ModelInput to save, got {type(data).__name__}"
            )
        save_model_input(data, Path(self._filepath))

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
