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


def test_missing_sqlite_db_exits_3_without_creating_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    code = main(["models", "list"])  # default sqlite:///mlflow.db in the cwd
    assert code == 3 and "mlflow.db" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


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
