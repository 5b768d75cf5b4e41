"""The installed ``sensorops`` entry point: usage errors and unreachable servers (exit codes 2 and 3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sensorops.cli import main

SENSOROPS = Path(sys.executable).parent / "sensorops"


def _dead_uri() -> str:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_console_script_is_installed_and_documents_commands():
    out = subprocess.run(
        [str(SENSOROPS), "models", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    for command in ("list", "show", "promote", "rollback", "history"):
        assert command in out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["models"],
        ["models", "promote", "m", "1"],  # --to missing
        ["models", "promote", "m", "1", "--to", "live"],
        ["models", "frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", "m@production"],
        ["promote", "m", "1", "--to", "staging"],
        ["rollback", "m"],
        ["history", "m"],
    ],
)
def test_unreachable_server_exits_3_and_says_how_to_start_one(command, capsys):
    uri = _dead_uri()
    code = main(["models", *command, "--tracking-uri", uri])
    err = capsys.readouterr().err
    assert code == 3
    assert uri in err and "make mlflow-server" in err


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A Kedro project (``pyproject.toml`` with ``[tool.kedro]``) with conf/base, conf/local and
    conf/strict promotion parameters; the working directory is its ``notebooks/`` sub-folder."""
    (tmp_path / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "demo"\n')
    for env, text in {
        "base": "promotion:\n  model_name: demo\n  gates:\n    staging_margin_points: 2.0\n"
        "    production_margin_points: 1.0\n",
        "local": "promotion:\n  gates:\n    staging_margin_points: 5.0\n",
        "strict": "promotion:\n  gates:\n    production_margin_points: 0.0\n",
    }.items():
        (tmp_path / "conf" / env).mkdir(parents=True)
        (tmp_path / "conf" / env / "parameters_promotion.yml").write_text(text)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_missing_sqlite_db_exits_3_without_creating_it(project, capsys):
    code = main(["models", "list"])  # default: sqlite:///<project root>/mlflow.db
    err = capsys.readouterr().err
    assert code == 3 and f"tracking database {project / 'mlflow.db'}" in err
    assert not (project / "mlflow.db").exists() and not (project / "notebooks/mlflow.db").exists()


def test_defaults_resolve_against_the_project_root(project):
    from sensorops.registry import resolve_tracking_uri

    assert resolve_tracking_uri(None) == f"sqlite:///{project / 'mlflow.db'}"
    assert resolve_tracking_uri("http://x:5000") == "http://x:5000"


def test_promotion_params_merge_base_env_and_params_file(project, tmp_path_factory, monkeypatch):
    from sensorops.cli import _config

    local = _config(None, None)  # default env: local
    assert local.model_name == "demo"
    assert (local.gates.staging_margin_points, local.gates.production_margin_points) == (5.0, 1.0)
    strict = _config(None, None, env="strict")
    assert (strict.gates.staging_margin_points, strict.gates.production_margin_points) == (2.0, 0.0)
    monkeypatch.setenv("KEDRO_ENV", "strict")
    assert _config(None, None).gates.production_margin_points == 0.0
    monkeypatch.delenv("KEDRO_ENV")
    override = tmp_path_factory.mktemp("params") / "p.yml"
    override.write_text("promotion:\n  gates:\n    production_margin_points: 3.0\n")
    merged = _config(str(override), None, target="production", env="strict")
    assert merged.model_name == "demo" and merged.gates.production_margin_points == 3.0
    assert merged.gates.staging_margin_points == 2.0
    assert _config(str(override), 7.0, target="production").gates.production_margin_points == 7.0


def test_unknown_env_exits_2_and_lists_the_environments(project, mlflow_server, capsys):
    code = main(
        ["models", "rollback", "m", "--env", "prod", "--tracking-uri", mlflow_server]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert (
        code == 2 and "--env must be one of ['base', 'local', 'strict']" in err and "'prod'" in err
    )


def test_tracking_uri_defaults_to_env(monkeypatch, capsys):
    uri = _dead_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["models", "list"]) == 3 and uri in capsys.readouterr().err


def test_bad_params_file_exits_2(mlflow_server, tmp_path, capsys):
    params = tmp_path / "p.yml"
    params.write_text("promotion:\n  gates:\n    regression_metric: auc\n")
    code = main(
        [
            "models",
            "promote",
            "m",
            "1",
            "--to",
            "staging",
            "--params",
            str(params),
            "--tracking-uri",
            mlflow_server,
        ]
    )
    assert code == 2 and "promotion.gates.regression_metric" in capsys.readouterr().err


def test_kedro_project_cli_group_forwards_models(capsys):
    """Kedro imports ``sensorops.cli`` and needs a click group ``cli``; ``kedro models`` forwards."""
    import click
    from click.testing import CliRunner

    from sensorops.cli import cli

    assert isinstance(cli, click.Group) and "models" in cli.commands
    uri = _dead_uri()
    result = CliRunner().invoke(cli, ["models", "list", "--tracking-uri", uri])
    assert result.exit_code == 3


def test_connect_without_a_configured_uri_uses_the_project_store(project):
    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    from sensorops.registry import ServerUnreachable, connect

    old = mlflow.get_tracking_uri() if is_tracking_uri_set() else None
    mlflow.set_tracking_uri(None)  # nothing configured: MLflow alone would use ./mlflow.db
    try:
        with pytest.raises(ServerUnreachable, match=f"tracking database {project / 'mlflow.db'} "):
            connect(None)
    finally:
        mlflow.set_tracking_uri(old)


def test_kedro_passthrough_commands_share_one_factory() -> None:
    """``kedro models ...`` / ``kedro serve ...`` hand their arguments to ``sensorops`` untouched."""
    from click.testing import CliRunner

    from sensorops.cli import cli, passthrough

    assert {"models", "serve"} <= set(cli.commands)
    result = CliRunner().invoke(cli, ["models", "show", "team/model/x"])
    assert result.exit_code == 2, result.output
    assert "invalid version 'model/x'" in result.output
    assert passthrough("noop-for-test", "x").name == "noop-for-test"
    cli.commands.pop("noop-for-test")
