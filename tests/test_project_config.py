"""Bad configuration stops a real Kedro session before any node runs, with a clear message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from sensorops.config_validation import UnknownParameterError
from sensorops.tracking import TrackingServerUnreachable
from tests.conftest import free_port


@pytest.fixture
def conf_copy(project_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the project's conf/ (base, test, ...), minus local secrets."""
    target = tmp_path / "conf"
    shutil.copytree(
        project_root / "conf", target, ignore=shutil.ignore_patterns("local", "uncommitted")
    )
    (target / "local").mkdir()
    return target


def _load_context(project_root: Path, conf: Path, **kwargs: object) -> None:
    bootstrap_project(project_root)
    with KedroSession.create(
        project_path=project_root, env="test", conf_source=str(conf), **kwargs
    ) as session:
        session.load_context()


def test_unknown_key_in_mlflow_yml_names_the_key(project_root: Path, conf_copy: Path) -> None:
    """kedro-mlflow validates mlflow.yml itself (strict pydantic), before any node runs."""
    from pydantic import ValidationError

    path = conf_copy / "base" / "mlflow.yml"
    path.write_text(
        path.read_text().replace(
            "  credentials: null", "  credentials: null\n  tracking_urii: x", 1
        )
    )
    with pytest.raises(ValidationError) as info:
        _load_context(project_root, conf_copy)
    assert "server.tracking_urii" in str(info.value)
    assert "KedroMlflowConfig" in str(info.value)


def test_unknown_runtime_parameter_names_the_key(
    project_root: Path, conf_copy: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(conf_copy.parent / "m.db"))
    with pytest.raises(UnknownParameterError) as info:
        _load_context(project_root, conf_copy, runtime_params={"no_such_pipeline": {"x": 1}})
    assert "'no_such_pipeline'" in str(info.value)


def test_unknown_key_in_an_env_parameters_file(
    project_root: Path, conf_copy: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(conf_copy.parent / "m.db"))
    base_files = sorted((conf_copy / "base").glob("parameters_*.yml"))
    assert base_files, "conf/base has no parameters files"
    top = base_files[0].stem.removeprefix("parameters_")
    (conf_copy / "test" / "parameters_zz_typo.yml").write_text(
        f"{top}:\n  definitely_not_a_key: 1\n"
    )
    with pytest.raises(UnknownParameterError) as info:
        _load_context(project_root, conf_copy)
    assert f"'{top}.definitely_not_a_key'" in str(info.value)


def test_unreachable_tracking_server_fails_fast(
    project_root: Path, conf_copy: Path, monkeypatch
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingServerUnreachable) as info:
        _load_context(project_root, conf_copy)
    assert uri in str(info.value)
    assert "make mlflow-server" in str(info.value)


def test_relative_path_parameters_mean_in_the_project(
    project_root: Path, conf_copy: Path, monkeypatch, tmp_path: Path
) -> None:
    """No chdir: the hook resolves relative ``*_dir``/``*_path`` parameters against the project."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(conf_copy.parent / "m.db"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    bootstrap_project(project_root)
    with KedroSession.create(
        project_path=project_root, env="test", conf_source=str(conf_copy)
    ) as session:
        params = session.load_context().params
    assert Path.cwd() == elsewhere  # the working directory is left alone
    root = project_root.resolve()
    assert params["training"]["trainer"]["output_dir"] == str(root / "data/06_models/training")
    assert params["data_quality"]["data_docs_dir"] == str(root / "data/08_reporting/data_docs")
    assert params["training"]["trainer"]["model_input_path"] is None  # null stays null


def test_resolve_project_paths_leaves_urls_absolute_paths_and_other_keys() -> None:
    from sensorops.config_validation import resolve_project_paths

    params = {"a": {"out_dir": "x", "path": "/abs", "uri_path": "s3://b/k", "name": "rel"}}
    assert resolve_project_paths(params, Path("/p")) == {
        "a": {"out_dir": "/p/x", "path": "/abs", "uri_path": "s3://b/k", "name": "rel"}
    }
