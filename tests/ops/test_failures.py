"""Exact, quiet failures: each bad input gets its own message and exit code, before work starts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sensorops.architectures import CheckpointError
from sensorops.cli import main
from sensorops.tracking import apply_credentials, mask_secrets, mask_uri, split_userinfo
from sensorops.training.config import TrainingConfig
from sensorops.training.data import ShardedBatches
from sensorops.training.launcher import (
    RESOLVED_CONFIG,
    bound_batch_size,
    launch_training,
    plan_launch,
    single_node_loopback,
)
from tests.training.conftest import make_model_input, tiny_config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "a/b/c"], "invalid version 'b/c'"),
        (["show", "sensorops-classifier/x"], "invalid version 'x'"),
        (["show", "name@bad alias"], "invalid alias 'bad alias'"),
        (["promote", "team/model", "1", "--to", "staging"], "invalid model name 'team/model'"),
        (["promote", "model", "1.5", "--to", "staging"], "invalid version '1.5'"),
        (["rollback", "model", "--to-version", "0"], "invalid version '0'"),
        (["list", "bad@name"], "invalid model name 'bad@name'"),
    ],
)
def test_cli_rejects_bad_names_and_versions_with_usage_exit(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["models", *args, "--tracking-uri", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert message in err and "Traceback" not in err


def test_uri_login_is_accepted_stripped_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    uri = "http://alice:s3cr%40t-pw@mlflow.example:5000/prefix"
    assert split_userinfo(uri) == ("http://mlflow.example:5000/prefix", "alice", "s3cr@t-pw")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert apply_credentials(uri) == "http://mlflow.example:5000/prefix"
    import os

    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cr@t-pw"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000/prefix"
    assert (
        mask_uri(f"error at {uri}: refused")
        == "error at http://***@mlflow.example:5000/prefix: refused"
    )
    assert "s3cr@t-pw" not in mask_secrets("the password s3cr@t-pw was wrong")
    # a database login in a postgresql:// URI is the store's own business, left as it is
    assert split_userinfo("postgresql://u:p@db/mlflow") == (
        "postgresql://u:p@db/mlflow",
        None,
        None,
    )


def test_unreachable_server_with_uri_login_names_the_host_not_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    code = main(["models", "list", "--tracking-uri", "http://bob:hunter2-secret@127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "http://127.0.0.1:9" in err and "Name or service not known" not in err
    assert "hunter2-secret" not in err and "bob:" not in err


def _cfg(tmp_path: Path, **overrides: Any) -> TrainingConfig:
    return TrainingConfig.from_dict(tiny_config(tmp_path / "run", **overrides))


def test_corrupt_last_checkpoint_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, checkpoint={"resume": "auto"})
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError) as info:
        launch_training(cfg, make_model_input())
    text = str(info.value)
    assert str(last) in text and "training.trainer.checkpoint.resume=never" in text
    assert not (tmp_path / "run" / RESOLVED_CONFIG).exists(), "the launch went ahead"


def test_batch_size_is_bounded_by_the_training_split(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(tmp_path, data={"batch_size": 100_000_000})
    with caplog.at_level(logging.WARNING, logger="sensorops.training.launcher"):
        bounded = bound_batch_size(cfg, plan_launch(cfg, visible_gpus=0), n_train=36)
    assert bounded.data.batch_size == 36
    assert "batch_size=100000000 exceeds the 36 training series; using 36" in caplog.text
    small = _cfg(tmp_path, data={"batch_size": 8})
    assert bound_batch_size(small, plan_launch(small, visible_gpus=0), n_train=36) is small


@pytest.mark.parametrize(("n", "micro", "world"), [(30, 4, 2), (39, 8, 2), (10, 16, 2), (7, 3, 3)])
def test_sample_counts_are_exact(n: int, micro: int, world: int) -> None:
    """Padding repeats and short last batches are not counted: one epoch is ``n`` samples."""
    batches = ShardedBatches(n, micro, world, rank=0, seed=0)
    assert batches.samples_in(0, len(batches)) == n
    assert sum(batches.samples_in(b, 1) for b in range(len(batches))) == n


def test_single_node_runs_rendezvous_on_loopback(tmp_path: Path) -> None:
    assert single_node_loopback(_cfg(tmp_path))
    assert single_node_loopback(_cfg(tmp_path, launch={"rdzv_endpoint": "127.0.0.1:29400"}))
    assert not single_node_loopback(_cfg(tmp_path, launch={"rdzv_endpoint": "10.0.0.1:29400"}))


@pytest.mark.slow
def test_save_failure_prints_one_block_naming_the_real_cause(
    e2e: dict[str, Any], mlflow_server: str, tmp_path: Path
) -> None:
    """``data/08_reporting`` replaced by a file: the block names the node, the dataset and the
    NotADirectoryError (not Kedro's "versioning" guess), the run carries the failure tags."""
    import shutil

    from mlflow import MlflowClient

    from tests.conftest import experiment_runs
    from tests.kedro_project import run_kedro

    project = Path(
        shutil.copytree(e2e["project"], tmp_path / "p", ignore=shutil.ignore_patterns("build"))
    )
    mlflow_yml = project / "conf" / "base" / "mlflow.yml"
    experiment = "failures-" + tmp_path.name[-12:]
    mlflow_yml.write_text(
        mlflow_yml.read_text().replace(f"name: {e2e['experiment']}\n", f"name: {experiment}\n")
    )
    reporting = project / "data" / "08_reporting"
    shutil.rmtree(reporting)
    reporting.write_text("not a folder\n")
    result = run_kedro(project, ["run", "--env=test", "--pipelines=data_quality"], mlflow_server)
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert "Traceback" not in console, console[-3000:]
    block = result.stderr[result.stderr.index("error: node '") :].strip().splitlines()
    assert len(block) <= 15, block
    assert "NotADirectoryError" in "\n".join(block), block
    assert console.count("was closed because of an error") <= 1
    log = project / "logs" / "last-error.log"
    assert "Traceback" in log.read_text()
    client = MlflowClient(tracking_uri=mlflow_server)
    (run,) = [
        r for r in experiment_runs(client, experiment) if "mlflow.parentRunId" not in r.data.tags
    ]
    assert run.info.status == "FAILED"
    assert run.data.tags["sensorops.failed_node"] in block[0]
    assert "NotADirectoryError" in run.data.tags["sensorops.error"]
