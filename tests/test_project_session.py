"""An in-process Kedro session (not the CLI) runs a pipeline and logs every node to MLflow."""

from __future__ import annotations

import uuid
from pathlib import Path

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow import MlflowClient

from tests.conftest import experiment_runs, use_experiment
from tests.kedro_project import copy_project


def test_in_process_session_logs_every_node(
    project_root: Path, tmp_path: Path, mlflow_server: str, monkeypatch
) -> None:
    project = copy_project(project_root, tmp_path / "project")
    experiment = f"session-{uuid.uuid4().hex[:8]}"
    use_experiment(project, experiment)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="test") as session:
        session.run(pipeline_names=["ingestion"])
    from kedro.framework.project import pipelines

    names = {n.name for n in pipelines["ingestion"].nodes}
    runs = experiment_runs(MlflowClient(mlflow_server, registry_uri=mlflow_server), experiment)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    for name in names:
        assert metrics[f"node.{name}.status"] == 1.0, name
    assert runs[0].data.tags["sensorops.pipelines"] == "ingestion"
    assert (project / "data" / "05_model_input" / "model_input.npz").exists()
