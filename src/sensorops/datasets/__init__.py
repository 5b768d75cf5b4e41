"""Kedro datasets specific to sensorops."""

from sensorops.datasets.atomic_files import (
    CSVDataset,
    JSONDataset,
    MatplotlibDataset,
    ParquetDataset,
    PickleDataset,
    TextDataset,
)
from sensorops.datasets.mlflow_tags import MlflowTagsDataset
from sensorops.datasets.model_input_dataset import ModelInputDataset
from sensorops.datasets.quality_mlflow import MlflowArtifactDirDataset, MlflowInputDataset

__all__ = [
    "CSVDataset",
    "JSONDataset",
    "MatplotlibDataset",
    "MlflowArtifactDirDataset",
    "MlflowInputDataset",
    "MlflowTagsDataset",
    "ModelInputDataset",
    "ParquetDataset",
    "PickleDataset",
    "TextDataset",
]
