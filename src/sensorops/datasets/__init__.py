"""Kedro datasets specific to sensorops."""

from sensorops.datasets.mlflow_tags import MlflowTagsDataset
from sensorops.datasets.model_input_dataset import ModelInputDataset
from sensorops.datasets.quality_mlflow import MlflowArtifactDirDataset, MlflowInputDataset

__all__ = ["MlflowArtifactDirDataset", "MlflowInputDataset", "MlflowTagsDataset", "ModelInputDataset"]
