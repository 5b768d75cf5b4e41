"""NodeTrackingHooks log per-node duration, status and data sizes into the active MLflow run."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from mlflow import MlflowClient

from sensorops.data_stats import describe_data
from sensorops.hooks import NodeTrackingHooks


def make_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(n, dtype=float), "b": np.ones(n)})


def to_array(frame: pd.DataFrame) -> np.ndarray:
    return frame.to_numpy().reshape(-1, 2, 1)


def explode(array: np.ndarray) -> np.ndarray:
    raise ValueError(f"bad array of shape {array.shape}")


def _pipeline(with_failure: bool) -> Pipeline:
    nodes = [
        node(make_frame, "params:n", "int_frame", name="make_frame", tags=["ingestion"]),
        node(to_array, "int_frame", "mi_array", name="to_array", tags=["ingestion"]),
    ]
    if with_failure:
        nodes.append(node(explode, "mi_array", "mdl_never", name="explode", tags=["training"]))
    return Pipeline(nodes)


def _run(tracking_uri: str, with_failure: bool) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("hooks-test")
    hooks = NodeTrackingHooks()
    manager = _create_hook_manager()
    manager.register(hooks)
    catalog = DataCatalog({"params:n": MemoryDataset(5)})
    pipeline = _pipeline(with_failure)
    with mlflow.start_run() as run:
        hooks.before_pipeline_run(
            {"run_id": "kedro-123", "pipeline_names": ["ingestion"], "env": "test"},
            pipeline,
            catalog,
        )
        try:
            SequentialRunner().run(pipeline, catalog, hook_manager=manager)
        except ValueError:
            if not with_failure:
                raise
        return run.info.run_id


def test_every_node_logs_duration_status_and_sizes(mlflow_server: str) -> None:
    run_id = _run(mlflow_server, with_failure=False)
    data = MlflowClient(mlflow_server).get_run(run_id).data
    for name in ("make_frame", "to_array"):
        assert data.metrics[f"node.{name}.status"] == 1.0
        assert data.metrics[f"node.{name}.duration_s"] >= 0.0
    assert data.metrics["node.make_frame.out.int_frame.count"] == 5.0
    assert data.tags["node.make_frame.out.int_frame.shape"] == "5x2"
    assert data.metrics["node.to_array.in.int_frame.count"] == 5.0
    assert data.metrics["node.to_array.out.mi_array.count"] == 10.0  # elements
    assert data.tags["node.to_array.out.mi_array.shape"] == "5x2x1"
    assert data.tags["sensorops.kedro_run_id"] == "kedro-123"
    assert data.tags["sensorops.pipelines"] == "ingestion"
    assert data.tags["sensorops.env"] == "test"
    assert "sensorops.version" in data.tags


def test_failing_node_is_tagged_with_name_and_error(mlflow_server: str) -> None:
    run_id = _run(mlflow_server, with_failure=True)
    data = MlflowClient(mlflow_server).get_run(run_id).data
    assert data.metrics["node.explode.status"] == 0.0
    assert data.tags["sensorops.failed_node"] == "explode"
    assert "bad array of shape (5, 2, 1)" in data.tags["sensorops.error"]


@pytest.mark.parametrize(
    ("obj", "count", "shape"),
    [
        (pd.DataFrame({"a": [1, 2, 3]}), 3, (3, 1)),
        (pd.Series([1.0, 2.0]), 2, (2,)),
        (np.zeros((2, 3, 4)), 24, (2, 3, 4)),
        ({"a": 1, "b": 2}, 2, None),
        ("a string", None, None),
        (None, None, None),
    ],
)
def test_describe_data(obj: object, count: int | None, shape: tuple[int, ...] | None) -> None:
    size = describe_data(obj)
    assert (size.count, size.shape) == (count, shape)


class _UnwritableDataset(AbstractDataset):
    """Saving fails as it does when ``data/08_reporting`` is a file."""

    def _load(self) -> None:
        raise NotImplementedError

    def _save(self, data: object) -> None:
        raise NotADirectoryError(20, "Not a directory", "data/08_reporting/report.json")

    def _describe(self) -> dict:
        return {}


def test_failed_save_tags_the_node_and_the_real_cause(mlflow_server: str) -> None:
    """Kedro calls on_node_error for the node function only: a save failure is tagged too."""
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("hooks-test")
    hooks = NodeTrackingHooks()
    manager = _create_hook_manager()
    manager.register(hooks)
    catalog = DataCatalog({"params:n": MemoryDataset(5), "rpt_frame": _UnwritableDataset()})
    pipeline = Pipeline([node(make_frame, "params:n", "rpt_frame", name="make_report")])
    with mlflow.start_run() as run:
        hooks.before_pipeline_run({"run_id": "k", "pipeline_names": ["x"]}, pipeline, catalog)
        with pytest.raises(Exception) as info:
            SequentialRunner().run(pipeline, catalog, hook_manager=manager)
        hooks.on_pipeline_error(info.value)
    data = MlflowClient(mlflow_server).get_run(run.info.run_id).data
    assert data.tags["sensorops.failed_node"] == "make_report"
    assert "saving rpt_frame failed" in data.tags["sensorops.error"]
    assert "NotADirectoryError" in data.tags["sensorops.error"]
