"""End to end through the real ``kedro`` CLI, env=test, against the real MLflow test server.

One session-scoped full run of ``__default__`` (tiny synthetic data, 2 gloo workers) feeds most
assertions; the fresh-clone message, the singular ``--pipeline`` flag and a failing run get their own
short runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from tests.conftest import experiment_runs, use_experiment
from tests.kedro_project import copy_project, kedro_env, run_kedro

WORKFLOW = ("ingestion", "data_quality", "training", "compression", "export", "promotion")


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
    from sensorops.config_validation import load_project_parameters

    conf = load_project_parameters(e2e["project"] / "conf", "test")
    logged = parent.data.params  # kedro-mlflow flattens nested parameters with "."
    trainer = conf["training"]["trainer"]
    assert logged["training.trainer.model.name"] == str(trainer["model"]["name"])
    assert float(logged["training.trainer.optimizer.lr"]) == float(trainer["optimizer"]["lr"])
    assert logged["ingestion.source.kind"] == str(conf["ingestion"]["source"]["kind"])


def test_training_logged_one_child_run_of_the_parent(e2e: dict[str, Any]) -> None:
    parent = e2e["parents"][0]
    children = [
        r for r in e2e["runs"] if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    training = [r for r in children if "train" in (r.info.run_name or "")]
    assert len(training) == 1, [r.info.run_name for r in children]
    assert len(e2e["runs"]) == 1 + len(children), "runs outside the parent/child tree"


def test_staging_version_traces_back_to_data(e2e: dict[str, Any]) -> None:
    from sensorops.model_input import load_model_input, split_digest

    client: MlflowClient = e2e["client"]
    report = json.loads((e2e["project"] / "data" / "08_reporting" / "promotion.json").read_text())
    version = client.get_model_version_by_alias(report["model_name"], "staging")
    tags = version.tags
    mi = load_model_input(e2e["project"] / "data" / "05_model_input" / "model_input.npz")
    for split in ("train", "val", "test"):
        assert tags[f"data.{split}_digest"] == split_digest(mi, split), split
    parent = e2e["parents"][0]
    assert version.run_id == parent.info.run_id
    assert tags["kedro.run_id"] == parent.data.tags["sensorops.kedro_run_id"]
    children = [
        r for r in e2e["runs"] if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    assert tags["training.mlflow_child_run_id"] == children[0].info.run_id
    assert tags["dq.passed"] == "true" and tags["parity.passed"] == "true"
    for split in ("train", "val", "test"):
        assert tags[f"dq.validated_{split}_digest"] == tags[f"data.{split}_digest"]


def test_every_pipeline_wrote_its_reports(e2e: dict[str, Any]) -> None:
    """Every artifact that crosses pipelines reads back through its contract, with sane numbers."""
    import pandas as pd

    from sensorops.contracts import (
        DataQualitySummary,
        EvaluationReport,
        ExportSummary,
        TrainingSummary,
    )
    from sensorops.model_input import load_model_input, model_input_digests

    data = e2e["project"] / "data"
    reporting = data / "08_reporting"
    assert (reporting / "data_docs" / "index.html").exists()
    mi = load_model_input(data / "05_model_input" / "model_input.npz")
    dq = DataQualitySummary.load(reporting / "dq_summary.json")
    assert dq.verdict(model_input_digests(mi)).passed, dq.verdict(model_input_digests(mi))
    assert set(dq.stages) == {"raw", "model_input"}
    training = TrainingSummary.load(data / "06_models" / "training_summary.json")
    assert Path(training.checkpoint()).is_file() and training.history
    assert training.epochs_completed == len(training.history)
    evaluation = EvaluationReport.load(reporting / "evaluation.json")
    assert (
        0.0 <= evaluation.macro_f1 <= evaluation.accuracy * 2 and 0.0 < evaluation.accuracy <= 1.0
    )
    assert evaluation.mlflow_training_run_id == training.mlflow_child_run_id
    export = ExportSummary.load(data / "06_models" / "export_summary.json")
    assert export.parity_passed is True and Path(export.onnx_path).is_file()
    assert (
        export.parity_max_abs_diff is not None and export.parity_max_abs_diff <= export.parity_atol
    )
    comparison = pd.read_csv(reporting / "compression_comparison.csv")
    assert "fp32_torch" in set(comparison["name"]), comparison
    reference = comparison.set_index("name").loc["fp32_torch"]
    assert abs(float(reference["accuracy"]) - evaluation.accuracy) < 1e-9  # same test split
    promotion = json.loads((reporting / "promotion.json").read_text())
    assert (
        promotion["status"] == "staged"
        and promotion["aliases"].get("staging") == promotion["version"]
    )


def test_singular_pipeline_flag_runs_one_pipeline(e2e: dict[str, Any], mlflow_server: str) -> None:
    result = run_kedro(
        e2e["project"], ["run", "--env=test", "--pipeline=data_quality"], mlflow_server
    )
    assert result.returncode == 0, result.stderr[-4000:]
    runs = experiment_runs(e2e["client"], e2e["experiment"])
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
    assert "rpt_dq_summary" in output and "kedro run --pipelines=data_quality" in output


def test_failing_node_marks_the_run_failed_and_writes_nothing_downstream(
    project_root: Path, tmp_path: Path, mlflow_server: str
) -> None:
    project = copy_project(project_root, tmp_path / "broken")
    experiment = f"fail-{uuid.uuid4().hex[:8]}"
    use_experiment(project, experiment)
    bad = tmp_path / "empty.parquet"
    bad.write_bytes(b"")
    params = f"ingestion.source.kind=long_table,ingestion.source.path={bad}"
    result = run_kedro(
        project, ["run", "--env=test", "--pipeline=ingestion", f"--params={params}"], mlflow_server
    )
    assert result.returncode != 0
    assert bad.name in result.stdout + result.stderr
    runs = experiment_runs(MlflowClient(mlflow_server, registry_uri=mlflow_server), experiment)
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.tags["sensorops.failed_node"] == "load_raw_source"
    for layer in ("02_intermediate", "03_primary", "05_model_input", "06_models"):
        written = [p for p in (project / "data" / layer).rglob("*") if p.is_file()]
        assert not written, f"{layer} has {written}"


def _sensorops(
    project: Path, args: list[str], tracking_uri: str
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("sensorops")
    return subprocess.run(
        [str(exe), "models", *args, "--tracking-uri", tracking_uri],
        cwd=project, capture_output=True, text=True, timeout=300, env=kedro_env(tracking_uri),
    )  # fmt: skip


def test_promote_to_production_then_roll_back(
    e2e: dict[str, Any], tmp_path: Path, mlflow_server: str
) -> None:
    """Stage with the pipeline, promote with the CLI, promote a second version, roll back."""
    project = Path(
        shutil.copytree(e2e["project"], tmp_path / "flow", ignore=shutil.ignore_patterns("build"))
    )
    name = f"flow-{uuid.uuid4().hex[:8]}"
    result = run_kedro(
        project,
        ["run", "--env=test", "--pipeline=promotion", f"--params=promotion.model_name={name}"],
        mlflow_server,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    client: MlflowClient = e2e["client"]
    first = client.get_model_version_by_alias(name, "staging").version
    candidates = [
        v.version for v in client.search_model_versions(f"name='{name}'") if v.version != first
    ]
    assert candidates, "only one version registered; the test needs a second one"
    second = candidates[0]

    promoted = _sensorops(
        project,
        # --env test: its wide baseline margin (the tiny model is below its 1-NN DTW baseline)
        ["promote", name, first, "--to", "production", "--reason", "e2e", "--env", "test"],
        mlflow_server,
    )
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert client.get_model_version_by_alias(name, "production").version == first
    assert client.get_model_version_by_alias(name, "champion").version == first

    for target in ("staging", "production"):
        step = _sensorops(
            project,
            ["promote", name, second, "--to", target, "--margin-points", "100", "--env", "test"],
            mlflow_server,
        )
        assert step.returncode == 0, step.stdout + step.stderr
    assert client.get_model_version_by_alias(name, "production").version == second

    back = _sensorops(project, ["rollback", name, "--reason", "e2e rollback"], mlflow_server)
    assert back.returncode == 0, back.stdout + back.stderr
    assert client.get_model_version_by_alias(name, "production").version == first
    productions = [
        v.version
        for v in client.search_model_versions(f"name='{name}'")
        if v.tags.get("sensorops.stage") == "production"
    ]
    assert productions == [first]
    history = _sensorops(project, ["history", name, "--json"], mlflow_server)
    assert history.returncode == 0
    assert "rollback" in history.stdout


def test_run_ends_by_saying_where_everything_is(e2e: dict[str, Any]) -> None:
    output = " ".join((e2e["result"].stdout + e2e["result"].stderr).split())
    assert "where the results are" in output
    parent = e2e["parents"][0]
    assert parent.info.run_id in output
    assert "@staging" in output and "--to production" in output
    assert "compression_comparison.md" in output and "index.html" in output
    for pipeline in ("ingestion", "data_quality", "training", "compression", "export", "promotion"):
        assert f" {pipeline} " in output.split("time per pipeline")[1][:600], pipeline
