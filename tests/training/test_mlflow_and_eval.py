"""2-worker training logged to a real MLflow server under a parent run; evaluation of its best checkpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorops.model_input import ModelInput
from sensorops.training.evaluation import EvaluationConfig, evaluate_checkpoint, evaluation_metrics
from sensorops.training.launcher import launch_training
from tests.training.conftest import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged_run(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory, tiny_mi: ModelInput
) -> Iterator[dict[str, Any]]:
    """One parent run (as kedro-mlflow opens it) around a 2-worker training launch.

    The global MLflow tracking URI is restored afterwards; no active experiment is set.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    out = tmp_path_factory.mktemp("mlflow_run")
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    try:
        experiment_id = MlflowClient(mlflow_server).create_experiment(f"training-test-{out.name}")
        params = tiny_config(
            out,
            loop={"epochs": 12},
            model={"name": "resnet1d"},
            mlflow={"enabled": True, "system_metrics_interval_s": 0.5, "log_every_n_steps": 5},
        )
        with mlflow.start_run(experiment_id=experiment_id, run_name="kedro-run") as parent:
            summary = launch_training(params, tiny_mi)
    finally:
        mlflow.set_tracking_uri(previous_uri)
    yield {
        "summary": summary,
        "parent_id": parent.info.run_id,
        "experiment_id": experiment_id,
        "uri": mlflow_server,
    }


def test_one_parent_one_training_child_no_extra_runs(logged_run: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(logged_run["uri"])
    runs = client.search_runs([logged_run["experiment_id"]])
    assert len(runs) == 2
    child = next(r for r in runs if r.info.run_id != logged_run["parent_id"])
    assert child.info.run_id == logged_run["summary"]["mlflow_child_run_id"]
    assert child.data.tags["mlflow.parentRunId"] == logged_run["parent_id"]
    assert child.info.status == "FINISHED"


def test_rank0_training_metrics_params_and_artifact(logged_run: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(logged_run["uri"])
    run_id = logged_run["summary"]["mlflow_child_run_id"]
    run = client.get_run(run_id)
    total = logged_run["summary"]["final_step"]
    loss = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in loss) == list(range(1, total + 1))  # every step, sent in batches
    for key in ("lr", "grad_norm", "samples_per_s", "val_accuracy", "val_loss", "val_macro_f1"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(run_id, "val_accuracy")) == 12
    assert run.data.params["training.model.name"] == "resnet1d"
    assert run.data.params["training.optimizer.lr"] == "0.01"
    artifacts = [a.path for a in client.list_artifacts(run_id, "checkpoints")]
    assert artifacts == ["checkpoints/best.pt"]


def test_every_rank_logs_its_own_system_metrics_tagged_with_host(
    logged_run: dict[str, Any],
) -> None:
    import socket

    from mlflow.tracking import MlflowClient

    run = MlflowClient(logged_run["uri"]).get_run(logged_run["summary"]["mlflow_child_run_id"])
    for rank in (0, 1):
        assert run.data.tags[f"system.rank{rank}.host"] == socket.gethostname()
        assert run.data.tags[f"system.rank{rank}.device"] == "cpu"
        for name in ("cpu_percent", "rss_mb", "sys_memory_percent"):
            assert f"system.rank{rank}.{name}" in run.data.metrics
    assert not any(k.startswith("system.rank2") for k in run.data.metrics)


def test_ddp_training_beats_chance_and_baseline_is_reported(
    logged_run: dict[str, Any], tiny_mi: ModelInput
) -> None:
    summary = logged_run["summary"]
    assert summary["world_size"] == 2
    assert summary["best_val_metric"] > 0.6  # 3 classes: chance is 1/3
    result = evaluate_checkpoint(
        summary["best_checkpoint"], tiny_mi, EvaluationConfig(dtw_sakoe_chiba_radius=4)
    )
    report = result.report
    assert report["accuracy"] > 0.6
    assert set(report["per_class"]) == set(tiny_mi.classes)
    assert 0.0 <= report["roc_auc_ovr"] <= 1.0
    assert sum(map(sum, report["confusion_matrix"])) == len(tiny_mi.y["test"])
    base = report["baseline_1nn_dtw"]
    assert base["n_reference_series"] == len(tiny_mi.y["train"]) and 0.0 <= base["accuracy"] <= 1.0
    assert report["delta_vs_baseline"]["accuracy"] == pytest.approx(
        report["accuracy"] - base["accuracy"]
    )
    assert list(result.predictions.columns[:3]) == ["series_id", "true", "predicted"]
    assert len(result.predictions) == len(tiny_mi.y["test"])
    assert set(result.per_class["method"]) == {"resnet1d", "1nn_dtw"}
    assert len(result.confusion_figure.axes) == 2
    metrics = evaluation_metrics(report)
    assert metrics["test_accuracy"] == {"value": report["accuracy"], "step": 0}
    assert "baseline_dtw_accuracy" in metrics


def test_entry_point_runs_unchanged_under_torchrun(
    logged_run: dict[str, Any], tmp_path: Path
) -> None:
    """The resolved config of the Kedro launch, re-run by hand with torchrun (2 gloo workers)."""
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    config = logged_run["summary"]["resolved_config"]
    out = tmp_path / "by_hand"
    env = {**os.environ, "MLFLOW_TRACKING_URI": logged_run["uri"], "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "sensorops.training.train",
            "--config",
            config,
            "--output-dir",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["resumed_from_step"] is None
    assert Path(summary["best_checkpoint"]).is_file()
    client = MlflowClient(logged_run["uri"])
    run = client.get_run(summary["mlflow_child_run_id"])  # rank 0 created it, rank 1 got its id
    assert summary["mlflow_child_run_id"] != logged_run["summary"]["mlflow_child_run_id"]
    assert run.data.tags["mlflow.parentRunId"] == logged_run["parent_id"]
    assert run.info.status == "FINISHED"
    assert "system.rank1.cpu_percent" in run.data.metrics  # rank 1 logged into the same run
