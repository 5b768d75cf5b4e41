"""Kedro datasets specific to sensorops."""

from sensorops.datasets.mlflow_tags import MlflowTagsDataset
from sensorops.datasets.model_input_dataset import ModelInputDataset

__all__ = ["MlflowTagsDataset", "ModelInputDataset"]
