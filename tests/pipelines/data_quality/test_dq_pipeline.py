"""The data_quality Kedro pipeline end to end with its real catalog and a real MLflow server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from tests.quality.conftest import long_table_to_model_input, make_long_table

from sensorops.pipelines.data_quality import create_pipeline
from sensorops.pipelines.data_quality import nodes as dq_nodes
from sensorops.quality import DataQualityError

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_pipeline_shape() -> None:
    pipe = create_pipeline()
    names = {n.name for n in pipe.nodes}
    assert names == {
        "track_raw_input",
        "track_model_input",
        "validate_raw_data",
        "validate_model_input",
        "report_data_quality",
    }
    for node in pipe.nodes:
        assert node.name == node.func.__name__
        assert "data_quality" in node.tags
        assert getattr(dq_nodes, node.name) is node.func
    assert pipe.inputs() == {"int_sensor_long", "mi_model_input", "params:data_quality"}
    assert "rpt_dq_summary" in pipe.outputs()
    gates = {n.name for n in pipe.nodes if "gate" in n.tags}
    assert gates == {"validate_raw_data", "validate_model_input"}


def test_catalog_entries_have_layers_and_cover_outputs() -> None:
    catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_data_quality.yml").read_text())
    for name, entry in catalog.items():
        assert name.startswith("rpt_dq_") and "." not in name
        assert entry["metadata"]["kedro-viz"]["layer"] == "reporting"
    produced = {o for n in create_pipeline().nodes for o in n.outputs}
    assert produced == set(catalog)


def _catalog(tmp_path: Path, frame: pd.DataFrame, params: dict[str, Any]) -> DataCatalog:
    config = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_data_quality.yml").read_text())
    for entry in config.values():
        inner = entry.get("dataset", entry)
        if "filepath" in inner:
            inner["filepath"] = str(tmp_path / Path(inner["filepath"]).name)
        if "source" in entry:
            entry["source"] = str(tmp_path / Path(entry["source"]).name)
    config["rpt_dq_metrics"]["prefix"] = "rpt_dq_metrics"  # what kedro-mlflow's hook sets
    catalog = DataCatalog.from_config(config)
    catalog["int_sensor_long"] = MemoryDataset(frame, copy_mode="assign")
    catalog["mi_model_input"] = MemoryDataset(long_table_to_model_input(frame), copy_mode="assign")
    catalog["params:data_quality"] = MemoryDataset(params)
    return catalog


@pytest.fixture
def tracking(mlflow_server: str) -> Iterator[str]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("dq_pipeline_tests")
    try:
        yield mlflow_server
    finally:
        if mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def dq_params(tmp_path: Path) -> dict[str, Any]:
    return {
        "gx_project_dir": str(tmp_path / "gxproj"),
        "data_docs_dir": str(tmp_path / "data_docs"),
        "separability": {"cv_folds": 3},
    }


def test_run_logs_inputs_metrics_tags_and_data_docs(
    tracking: str, tmp_path: Path, dq_params: dict[str, Any]
) -> None:
    catalog = _catalog(tmp_path, make_long_table(), dq_params)
    with mlflow.start_run() as run:
        SequentialRunner().run(create_pipeline(), catalog)
    summary = json.loads((tmp_path / "dq_summary.json").read_text())
    assert summary["passed"] is True
    from sensorops.model_input import model_input_digests

    assert summary["model_input_digests"] == model_input_digests(catalog.load("mi_model_input"))
    for stage in ("raw", "model_input"):
        for tier in ("tier1", "tier2", "tier3"):
            entry = summary["stages"][stage]["tiers"][tier]
            assert entry["success"] is True and entry["action"] == "fail"
            assert entry["evaluated"] > 0 and entry["failed"] == 0
    assert (tmp_path / "data_docs" / "index.html").is_file()
    report = json.loads((tmp_path / "dq_validation_report.json").read_text())
    assert "raw_tier2_series_stats" in report["raw"]

    got = mlflow.get_run(run.info.run_id)
    assert got.data.tags["data_quality.passed"] == "true"
    assert got.data.tags["data_quality.raw.tier1"] == "passed"
    assert got.data.metrics["rpt_dq_metrics.raw.tier1.success"] == 1.0
    assert got.data.metrics["rpt_dq_metrics.model_input.tier3.balanced_accuracy"] >= 0.9
    assert "rpt_dq_metrics.raw.tier1.missing_rate.c0" in got.data.metrics
    inputs = {d.dataset.name: d for d in got.inputs.dataset_inputs}
    assert set(inputs) == {"int_sensor_long", "mi_model_input"}
    for d in inputs.values():
        assert d.dataset.digest
    contexts = {t.value for d in inputs.values() for t in d.tags if t.key == "mlflow.data.context"}
    assert contexts == {"data_quality.raw", "data_quality.model_input"}
    client = mlflow.MlflowClient()
    docs = {f.path for f in client.list_artifacts(run.info.run_id, "data_docs")}
    assert "data_docs/index.html" in docs
    reports = {f.path for f in client.list_artifacts(run.info.run_id, "data_quality")}
    assert {"data_quality/dq_summary.json", "data_quality/dq_correlation.csv"} <= reports


def test_fail_tier_stops_the_run(tracking: str, tmp_path: Path, dq_params: dict[str, Any]) -> None:
    frame = make_long_table()
    frame.loc[frame.index[: len(frame) // 2], "c1"] = np.nan
    catalog = _catalog(tmp_path, frame, dq_params)
    with (
        mlflow.start_run(),
        pytest.raises(DataQualityError, match="rule 'missing_rate' column 'c1'"),
    ):
        SequentialRunner().run(create_pipeline(), catalog)
    assert not (tmp_path / "dq_summary.json").exists()


def test_warn_tier_continues_and_tags_the_run(
    tracking: str, tmp_path: Path, dq_params: dict[str, Any]
) -> None:
    frame = make_long_table()
    frame["c2"] = frame["c0"]
    params = {**dq_params, "basic_statistics": {"action": "warn"}}
    catalog = _catalog(tmp_path, frame, params)
    with mlflow.start_run() as run:
        SequentialRunner().run(create_pipeline(), catalog)
    summary = json.loads((tmp_path / "dq_summary.json").read_text())
    assert summary["passed"] is True
    assert summary["warnings"] == ["raw.tier1", "model_input.tier1"]
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["data_quality.raw.tier1"] == "warn_failed"
    assert tags["data_quality.raw.tier2"] == "passed"
    assert tags["data_quality.warnings"] == "raw.tier1,model_input.tier1"
