"""Link validated data to the MLflow run: ``mlflow.data`` datasets with a digest, and Data Docs.

Called by the catalog datasets in :mod:`sensorops.datasets.quality_mlflow`; nodes never import
mlflow. Without an active run every function logs a warning and does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from sensorops.model_input import SPLITS, ModelInput

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_mlflow_data() -> Iterator[None]:
    """Silence mlflow.data's harmless hints (integer columns in the schema, pandas 4 keywords)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
        warnings.filterwarnings("ignore", message=".*arguments of all will be keyword-only.*")
        yield


def to_mlflow_dataset(data: pd.DataFrame | ModelInput, name: str, source: str | None = None) -> Any:
    """An ``mlflow.data`` dataset (with its content digest) for a long table or a model input.

    Args:
        data: the long sensor table, or a :class:`ModelInput` (features ``X_<split>`` of shape
            ``(n_series, length, n_channels)``, targets ``y_<split>``).
        name: dataset name shown in MLflow (the catalog name, e.g. ``int_sensor_long``).
        source: where the data lives (a file path); recorded as the dataset source.
    """
    import mlflow.data
    from mlflow.data.sources import LocalArtifactDatasetSource

    src = LocalArtifactDatasetSource(str(Path(source).resolve())) if source else None
    if isinstance(data, pd.DataFrame):
        with _quiet_mlflow_data():
            return mlflow.data.from_pandas(
                data, source=src, name=name, targets="label" if "label" in data else None
            )
    if isinstance(data, ModelInput):
        features = {f"X_{s}": data.X[s] for s in SPLITS}
        targets = {f"y_{s}": data.y[s] for s in SPLITS}
        return mlflow.data.from_numpy(features, targets=targets, source=src, name=name)
    raise TypeError(
        f"{name}: expected a pandas DataFrame or a ModelInput to log as MLflow input; got {type(data).__name__}"
    )


def log_dataset_input(
    data: pd.DataFrame | ModelInput, name: str, context: str, source: str | None = None
) -> str | None:
    """Log ``data`` as an input of the active MLflow run (``mlflow.log_input``).

    Returns:
        The dataset digest, or ``None`` when no run is active (a warning is logged).
    """
    import mlflow

    dataset = to_mlflow_dataset(data, name, source)
    if mlflow.active_run() is None:
        logger.warning(
            "no active MLflow run; dataset input %s (digest %s) not logged", name, dataset.digest
        )
        return None
    with _quiet_mlflow_data():
        mlflow.log_input(dataset, context=context)
    logger.info("logged MLflow input %s (digest %s, context %s)", name, dataset.digest, context)
    return str(dataset.digest)


def log_directory(path: str | os.PathLike[str], artifact_path: str) -> bool:
    """Log every file under ``path`` as artifacts ``<artifact_path>/...`` of the active run.

    Returns:
        Whether anything was logged (``False`` without an active run).

    Raises:
        FileNotFoundError: ``path`` is not a directory.
    """
    import mlflow

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot log {folder} to MLflow as {artifact_path!r}: not a directory"
        )
    if mlflow.active_run() is None:
        logger.warning("no active MLflow run; %s not logged as artifact %r", folder, artifact_path)
        return False
    mlflow.log_artifacts(str(folder), artifact_path=artifact_path)
    return True
