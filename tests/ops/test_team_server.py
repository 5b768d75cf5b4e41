"""The team setup, for real: PostgreSQL backend, proxied artifacts, basic auth (``make mlflow-team``).

One ``kedro run --env=test --pipeline=promotion`` (on the end-to-end run's data) runs as user
``alice`` with her login in the URI (``http://alice:secret@host:port``): runs, artifacts and the
registry all land in PostgreSQL and the server's artifact folder. Then a READ-only user may list and show but not promote; a wrong
password stops a run before any node; and no password appears anywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import experiment_runs
from tests.kedro_project import kedro_env
from tests.ops.conftest import TeamServer

pytestmark = pytest.mark.slow
EXPERIMENT = "team"
MODEL = "sensorops-classifier"


def _run(
    args: list[str], project: Path, uri: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``args[0]`` (``kedro``/``sensorops``) from the venv in ``project``, tracking to ``uri``."""
    exe = Path(sys.executable).with_name(args[0])
    full_env = {**kedro_env(uri), **(env or {})}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if key not in (env or {}):
            full_env.pop(key, None)
    return subprocess.run(
        [str(exe), *args[1:]],
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _login(user: str, password: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


def _team_project(e2e: dict[str, Any], target: Path) -> Path:
    """A copy of the end-to-end run's project (its data on disk) that logs to ``EXPERIMENT``."""
    project = Path(shutil.copytree(e2e["project"], target, ignore=shutil.ignore_patterns("build")))
    mlflow_yml = project / "conf" / "base" / "mlflow.yml"
    text = mlflow_yml.read_text()
    assert f"name: {e2e['experiment']}\n" in text
    mlflow_yml.write_text(text.replace(f"name: {e2e['experiment']}\n", f"name: {EXPERIMENT}\n"))
    # the lease's read->write gap is one authenticated round trip; a loaded 2-core test machine
    # needs more than the test env's 0.2 s (a real team sets lock.* for its server)
    params = project / "conf" / "test" / "parameters_promotion.yml"
    loaded = yaml.safe_load(params.read_text())
    loaded["promotion"]["lock"] = {"settle_s": 2.5, "max_write_gap_s": 2.0, "timeout_s": 120}
    params.write_text(yaml.safe_dump(loaded))
    return project


@pytest.fixture(scope="module")
def team(
    e2e: dict[str, Any], team_server: TeamServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The promotion pipeline (register, gate, stage) as ``alice``, her login in the URI.

    It runs on the data the session's end-to-end run left on disk (the whole workflow is already
    tested there against the sqlite server); against this server it makes a Kedro run with
    nested evidence runs, logs ONNX models through the artifact proxy and registers them.
    """
    project = _team_project(e2e, tmp_path_factory.mktemp("team") / "project")
    password = team_server.add_user("alice")
    host = team_server.uri.removeprefix("http://")
    result = _run(
        ["kedro", "run", "--env=test", "--pipelines=promotion"],
        project,
        f"http://alice:{password}@{host}",
    )
    assert result.returncode == 0, (result.stdout[-6000:], result.stderr[-6000:])
    return {"project": project, "alice": password, "outputs": [result.stdout, result.stderr]}


@pytest.fixture
def admin(team_server: TeamServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", team_server.admin)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", team_server.admin_password)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=team_server.uri, registry_uri=team_server.uri)


def test_whole_run_lands_in_postgres_with_proxied_artifacts(
    team: dict[str, Any], team_server: TeamServer, admin: Any
) -> None:
    runs = experiment_runs(admin, EXPERIMENT)
    assert runs and all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    # the artifacts went through the server (mlflow-artifacts:/), into its own folder
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)
    stored = [p for p in (team_server.folder / "artifacts").rglob("*") if p.is_file()]
    assert any(p.suffix == ".onnx" for p in stored), sorted(p.name for p in stored)[:20]
    assert (
        not (team["project"] / "mlruns").exists() and not (team["project"] / "mlartifacts").exists()
    )
    staging = admin.get_model_version_by_alias(MODEL, "staging")
    assert admin.get_registered_model(MODEL).name == MODEL
    assert staging.run_id in {r.info.run_id for r in runs}


def test_read_only_user_can_look_but_not_promote(
    team: dict[str, Any], team_server: TeamServer, admin: Any
) -> None:
    password = team_server.add_user("reader")
    team_server.grant("reader", "registered_model", MODEL, "READ")
    project, uri, login = team["project"], team_server.uri, _login("reader", password)
    listed = _run(["sensorops", "models", "list", MODEL, "--json"], project, uri, login)
    assert listed.returncode == 0, listed.stderr
    assert {v["version"] for v in json.loads(listed.stdout)["versions"]}
    shown = _run(["sensorops", "models", "show", f"{MODEL}@staging"], project, uri, login)
    assert shown.returncode == 0, shown.stderr

    version = admin.get_model_version_by_alias(MODEL, "staging").version
    before = _registry_state(admin)
    promoted = _run(
        ["sensorops", "models", "promote", MODEL, version, "--to", "production", "--env", "test"],
        project,
        uri,
        login,
    )
    assert promoted.returncode == 7, promoted.stdout + promoted.stderr
    assert "permission denied" in promoted.stderr and "'reader'" in promoted.stderr
    assert "Traceback" not in promoted.stderr
    assert _registry_state(admin) == before, "a refused promotion changed the registry"
    back = _run(["sensorops", "models", "rollback", MODEL, "--env", "test"], project, uri, login)
    assert back.returncode == 7, back.stdout + back.stderr
    assert _registry_state(admin) == before
    team["outputs"] += [listed.stdout, listed.stderr, shown.stdout, promoted.stderr, back.stderr]


def _registry_state(client: Any) -> Any:
    model = client.get_registered_model(MODEL)
    versions = client.search_model_versions(f"name='{MODEL}'")
    return (
        dict(model.aliases),
        dict(model.tags),
        sorted((v.version, tuple(sorted(v.tags.items())), v.current_stage) for v in versions),
    )


def test_owner_promotes_with_credentials_file(
    team: dict[str, Any], team_server: TeamServer, admin: Any
) -> None:
    """``alice`` (who registered the model) promotes; her login only in conf/local/credentials.yml."""
    project = team["project"]
    creds = project / "conf" / "local" / "credentials.yml"
    creds.write_text(
        f"mlflow:\n  MLFLOW_TRACKING_USERNAME: alice\n  MLFLOW_TRACKING_PASSWORD: {team['alice']}\n"
    )
    try:
        version = admin.get_model_version_by_alias(MODEL, "staging").version
        promoted = _run(
            [
                "sensorops",
                "models",
                "promote",
                MODEL,
                version,
                "--to",
                "production",
                "--env",
                "test",
            ],
            project,
            team_server.uri,
        )
    finally:
        creds.unlink()
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert admin.get_model_version_by_alias(MODEL, "production").version == version
    team["outputs"] += [promoted.stdout, promoted.stderr]


def test_wrong_password_fails_before_any_node(
    team: dict[str, Any], team_server: TeamServer
) -> None:
    wrong = "not-alices-password-42"
    team_server.secrets.append(wrong)
    result = _run(
        ["kedro", "run", "--env=test", "--pipelines=ingestion"],
        team["project"],
        team_server.uri,
        _login("alice", wrong),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "refused the login of user 'alice' (HTTP 401)" in output, output[-3000:]
    assert "Running node" not in output and "Loading data" not in output
    listed = _run(
        ["sensorops", "models", "list"], team["project"], team_server.uri, _login("alice", wrong)
    )
    assert listed.returncode == 7 and "refused the login" in listed.stderr, listed.stderr
    team["outputs"] += [output, listed.stdout, listed.stderr]


def test_no_password_anywhere(team: dict[str, Any], team_server: TeamServer, admin: Any) -> None:
    """Console, log files, run summaries, MLflow params/tags/descriptions, artifacts: no secret."""
    texts: dict[str, str] = {f"console[{i}]": t for i, t in enumerate(team["outputs"])}
    for folder in (
        team["project"] / "data",
        team["project"] / "logs",
        team_server.folder / "artifacts",
    ):
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file() and path.stat().st_size < 5_000_000:
                texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    exp = admin.get_experiment_by_name(EXPERIMENT)
    for run in admin.search_runs([exp.experiment_id], max_results=500):
        texts[f"run {run.info.run_id}"] = json.dumps(
            [run.data.params, run.data.tags, run.info.run_name, run.info.artifact_uri]
        )
    for model in admin.search_registered_models():
        texts[f"model {model.name}"] = json.dumps([model.description, model.tags, model.aliases])
        for v in admin.search_model_versions(f"name='{model.name}'"):
            texts[f"{model.name} v{v.version}"] = json.dumps([v.description, v.tags, v.source])
    assert len(team_server.secrets) >= 3  # admin, alice, reader (and the wrong one)
    leaks = [(where, s) for where, text in texts.items() for s in team_server.secrets if s in text]
    assert not leaks, leaks[:5]
    # and the URI alice gave (with her login) is printed masked, if at all
    assert "alice:" not in "\n".join(team["outputs"])
