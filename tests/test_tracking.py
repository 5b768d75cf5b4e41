"""Tracking URI resolution and the fail-fast reachability check."""

from __future__ import annotations

import pytest

from sensorops.tracking import TrackingServerUnreachable, check_tracking_uri, default_tracking_uri
from tests.conftest import free_port


def test_default_is_embedded_sqlite_at_project_root(
    monkeypatch: pytest.MonkeyPatch, project_root, tmp_path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project_root / "conf")
    assert default_tracking_uri() == f"sqlite:///{project_root / 'mlflow.db'}"
    other = tmp_path / "other_project"
    (other / "sub").mkdir(parents=True)
    (other / "pyproject.toml").write_text(
        '[tool.kedro]\npackage_name = "sensorops"\nproject_name = "x"\nkedro_init_version = "1.7.0"\n'
    )
    monkeypatch.chdir(other / "sub")
    assert default_tracking_uri() == f"sqlite:///{other / 'mlflow.db'}"


def test_env_var_switches_to_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert default_tracking_uri() == "http://127.0.0.1:5999"


def test_unreachable_server_names_uri_and_how_to_start_one() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingServerUnreachable) as info:
        check_tracking_uri(uri, timeout_s=1.0)
    assert uri in str(info.value)
    assert "make mlflow-server" in str(info.value)


def test_live_server_and_local_stores_pass(mlflow_server: str, tmp_path) -> None:
    check_tracking_uri(mlflow_server)
    missing = tmp_path / "no" / "such.db"
    check_tracking_uri(f"sqlite:///{missing}")  # local stores are not probed ...
    assert not missing.parent.exists()  # ... and not touched


def test_default_sqlite_store_is_created_at_the_project_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """The embedded store really is ``<project root>/mlflow.db``, from any sub-folder."""
    from mlflow import MlflowClient

    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "sensorops"\n')
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project / "notebooks")
    uri = default_tracking_uri()
    assert uri == f"sqlite:///{project.resolve() / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("where-am-i")
    assert client.get_experiment(experiment).name == "where-am-i"
    assert (project / "mlflow.db").is_file()
    assert not (project / "notebooks" / "mlflow.db").exists()


def test_tracking_module_is_kedro_free() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sensorops.tracking as t; t.project_root(); t.default_tracking_uri(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kedro'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_http_retries_are_bounded_but_user_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from sensorops.tracking import HTTP_RETRY_DEFAULTS, bound_http_retries

    for key in HTTP_RETRY_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    bound_http_retries()
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "4"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 4  # MLflow reads them as the project set them


def test_outage_is_recognised_through_the_exception_chain() -> None:
    from sensorops.tracking import TrackingAuthError, TrackingOutage, looks_unreachable

    try:
        try:
            raise ConnectionError("Connection refused")
        except ConnectionError as inner:
            raise RuntimeError("saving rpt_training_metrics failed") from inner
    except RuntimeError as outer:
        assert looks_unreachable(outer)
    assert looks_unreachable(TrackingOutage("gone"))
    assert not looks_unreachable(TrackingAuthError("HTTP 401"))
    assert not looks_unreachable(ValueError("bad value"))
