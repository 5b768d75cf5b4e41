"""End to end through the real ``kedro`` CLI, env=test, against the real MLflow test server.

One session-scoped full run of ``__default__`` (tiny synthetic data, 2 gloo workers) feeds most
assertions; the fresh-clone message, the singular ``--pipeline`` flag and a failing run get their own
short runs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.kedro_project import copy_project, run_kedro

WORKFLOW = ("ingestion", "data_quality", "training", "compression", "export", "promotion")


def _use_experiment(project: Path, name: str) -> None:
    path = project / "conf" / "base" / "mlflow.yml"
    path.write_text(path.read_text().replace("name: sensorops\n", f"name: {name}\n", 1))


def _runs(client: MlflowClient, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was not created"
    return client.search_runs([exp.experiment_id], max_results=100)


@pytest.fixture(scope="session")
def e2e(
    project_root: Path, tmp_path_factory: pytest.TempPathFactory, mlflow_server: str
) -> dict[str, Any]:
    """Run ``kedro run --env=test`` once for the whole workflow; return what the tests inspect."""
    project = copy_project(project_root, tmp_path_factory.mktemp("e2e") / "project")
    experiment = f"e2e-{uuid.uuid4().hex[:8]}"
    _use_experiment(project, experiment)
    result = run_kedro(project, ["run", "--env=test"], mlflow_server, timeout=1200)
    assert result.returncode == 0, (result.stdout[-6000:], result.stderr[-6000:])
    client = MlflowClient(mlflow_server)
    runs = _runs(client, experiment)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return {"project": project, "experiment": experiment, "client": client, "runs": runs,
            "parents": parents, "result": result}  # fmt: skip


def test_one_parent_run_with_metrics_for_every_node(
    e2e: dict[str, Any], project_root: Path
) -> None:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    assert len(e2e["parents"]) == 1, [r.info.run_name for r in e2e["parents"]]
    parent = e2e["parents"][0]
    assert parent.info.status == "FINISHED"
    bootstrap_project(project_root)
    for node in pipelines["__default__"].nodes:
        assert parent.data.metrics.get(f"node.{node.name}.status") == 1.0, (
            f"no status metric for {node.name}"
        )
        assert f"node.{node.name}.duration_s" in parent.data.metrics
    tags = parent.data.tags
    assert tags["sensorops.env"] == "test"
    assert tags["sensorops.kedro_run_id"]
    assert "training.model.name" in parent.data.params or any(
        k.startswith("training.") for k in parent.data.params
    )


def test_training_logged_one_child_run_of_the_parent(e2e: dict[str, Any]) -> None:
    parent = e2e["parents"][0]
    children = [
        r for r in e2e["runs"] if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    training = [r for r in children if "train" in (r.info.run_name or "")]
    assert len(training) == 1, [r.info.run_name for r in children]
    assert len(e2e["runs"]) == 1 + len(children), "runs outside the parent/child tree"


def test_staging_version_traces_back_to_data(e2e: dict[str, Any]) -> None:
    client: MlflowClient = e2e["client"]
    report = json.loads(
        (e2e["project"] / "data" / "08_reporting" / "promotion.json").read_text()
    )
    name = report["model_name"]
    version = client.get_model_version_by_alias(name, "staging")
    tags = version.tags
    assert any("digest" in k for k in tags), sorted(tags)
    assert version.run_id == e2e["parents"][0].info.run_id or tags.get("mlflow_run_id")


def test_every_pipeline_wrote_its_reports(e2e: dict[str, Any]) -> None:
    reporting = e2e["project"] / "data" / "08_reporting"
    assert (reporting / "data_docs" / "index.html").exists()
    assert any(reporting.glob("*comparison*.csv")), sorted(p.name for p in reporting.iterdir())


def test_singular_pipeline_flag_runs_one_pipeline(e2e: dict[str, Any], mlflow_server: str) -> None:
    result = run_kedro(
        e2e["project"], ["run", "--env=test", "--pipeline=data_quality"], mlflow_server
    )
    assert result.returncode == 0, result.stderr[-4000:]
    runs = _runs(e2e["client"], e2e["experiment"])
    latest = max(
        (r for r in runs if "mlflow.parentRunId" not in r.data.tags),
        key=lambda r: r.info.start_time,
    )
    assert latest.data.tags["sensorops.pipelines"] == "data_quality"
    assert any(k.startswith("node.validate_") for k in latest.data.metrics)


def test_fresh_clone_training_names_the_command_that_makes_its_input(
    project_root: Path, tmp_path: Path, mlflow_server: str
) -> None:
    project = copy_project(project_root, tmp_path / "fresh")
    result = run_kedro(project, ["run", "--pipeline=training"], mlflow_server, timeout=300)
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert "kedro run --pipelines=ingestion" in output, output[-3000:]
    assert "mi_model_input" in output


def test_failing_node_marks_the_run_failed_and_writes_nothing_downstream(
    project_root: Path, tmp_path: Path, mlflow_server: str
) -> None:
    project = copy_project(project_root, tmp_path / "broken")
    experiment = f"fail-{uuid.uuid4().hex[:8]}"
    _use_experiment(project, experiment)
    bad = tmp_path / "empty.parquet"
    bad.write_bytes(b"")
    params = f"ingestion.source.kind=long_table,ingestion.source.path={bad}"
    result = run_kedro(
        project, ["run", "--env=test", "--pipeline=ingestion", f"--params={params}"], mlflow_server
    )
    assert result.returncode != 0
    assert bad.name in result.stdout + result.stderr
    runs = _runs(MlflowClient(mlflow_server), experiment)
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.tags["sensorops.failed_node"] == "load_raw_source"
    for layer in ("02_intermediate", "03_primary", "05_model_input", "06_models"):
        written = [p for p in (project / "data" / layer).rglob("*") if p.is_file()]
        assert not written, f"{layer} has {written}"
