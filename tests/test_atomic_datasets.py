"""Atomic file datasets: complete files or the previous file, never half a file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro_mlflow.io.artifacts import MlflowArtifactDataset
from mlflow import MlflowClient

from sensorops.datasets import CSVDataset, JSONDataset, MatplotlibDataset, ParquetDataset


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_json_round_trip_leaves_no_temporary_file(tmp_path: Path) -> None:
    ds = JSONDataset(filepath=str(tmp_path / "out" / "report.json"))
    ds.save({"a": 1})
    assert ds.load() == {"a": 1}
    assert _leftovers(tmp_path / "out") == []


def test_failed_json_save_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    ds = JSONDataset(filepath=str(path))
    ds.save({"version": 1})
    with pytest.raises(DatasetError):
        ds.save({"bad": object()})  # not JSON serialisable: fails half way through writing
    assert ds.load() == {"version": 1}
    assert _leftovers(tmp_path) == []


def test_failed_parquet_save_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    ds = ParquetDataset(filepath=str(path))
    with pytest.raises(DatasetError):
        ds.save(pd.DataFrame({"mixed": [1, "two", {"three": 3}]}))
    assert not path.exists()
    assert _leftovers(tmp_path) == []


def test_csv_and_single_figure(tmp_path: Path) -> None:
    CSVDataset(filepath=str(tmp_path / "t.csv"), save_args={"index": False}).save(
        pd.DataFrame({"x": [1, 2]})
    )
    assert (tmp_path / "t.csv").read_text().splitlines() == ["x", "1", "2"]
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    MatplotlibDataset(filepath=str(tmp_path / "f.png")).save(fig)
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert _leftovers(tmp_path) == []


def test_works_inside_kedro_mlflow_artifact_dataset(tmp_path: Path, mlflow_server: str) -> None:
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("atomic-datasets")
    ds = MlflowArtifactDataset(
        dataset={"type": "sensorops.datasets.JSONDataset", "filepath": str(tmp_path / "m.json")},
        artifact_path="reports",
    )
    with mlflow.start_run() as run:
        ds.save({"ok": True})
    assert (tmp_path / "m.json").exists()
    names = [a.path for a in MlflowClient(mlflow_server).list_artifacts(run.info.run_id, "reports")]
    assert names == ["reports/m.json"]
