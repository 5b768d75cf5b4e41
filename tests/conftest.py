"""Shared fixtures: a real MLflow tracking server and the project root.

The server is a real ``mlflow server`` subprocess on a free 127.0.0.1 port with a sqlite backend and
a local artifact root, started once per test session with the lean flags (one worker, no job
execution), and its whole process tree is killed by PID at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kedro_project import copy_project, run_kedro

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# the Ray cluster and the service (session fixtures any test package may use)
pytest_plugins = ["tests.serving_fixtures"]
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """All descendant PIDs of ``pid`` (read from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def kill_process_tree(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate ``proc`` and every descendant, escalating to SIGKILL."""
    pids = [proc.pid, *_descendants(proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=timeout)


def start_mlflow_server(workdir: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    """Start a lean ``mlflow server`` on 127.0.0.1:``port`` storing everything under ``workdir``.

    ``log`` is an open binary file that receives the server's stdout and stderr.
    """
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", str(workdir / "artifacts"),
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(uri: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    """Poll ``uri``/health until it answers OK; fail with the server log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(
        f"mlflow server at {uri} not healthy after {timeout}s:\n{log.read_text()[-4000:]}"
    )


MLFLOW_ENV_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
)


@pytest.fixture(autouse=True)
def _isolate_mlflow_state() -> Iterator[None]:
    """Undo what a test left in MLflow's process-wide state.

    ``mlflow.set_tracking_uri``/``set_registry_uri`` also write ``MLFLOW_TRACKING_URI``/
    ``MLFLOW_REGISTRY_URI`` into ``os.environ``, which every later subprocess (kedro CLI runs, torchrun
    workers, notebook kernels) would inherit; runs left open would swallow later runs as children.
    """
    import mlflow
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    saved_env = {name: os.environ.get(name) for name in MLFLOW_ENV_VARS}
    saved_cwd = os.getcwd()  # an in-process Kedro session moves to its project root
    saved_tracking = tracking_utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    os.chdir(saved_cwd)
    tracking_utils._tracking_uri = saved_tracking
    registry_utils._registry_uri = saved_registry
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI (``http://127.0.0.1:PORT``) of a real MLflow tracking server for this test session."""
    workdir = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with open(workdir / "server.log", "wb") as log:
        proc = start_mlflow_server(workdir, port, log)
        try:
            wait_healthy(uri, proc, workdir / "server.log")
            yield uri
        finally:
            kill_process_tree(proc)


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The sensorops checkout under test."""
    return PROJECT_ROOT


# --- the end-to-end workflow run, shared by test_end_to_end.py and test_notebook.py -------------


def use_experiment(project: Path, name: str) -> None:
    path = project / "conf" / "base" / "mlflow.yml"
    path.write_text(path.read_text().replace("name: sensorops\n", f"name: {name}\n", 1))


def experiment_runs(client: Any, experiment: str) -> list[Any]:
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
    use_experiment(project, experiment)
    result = run_kedro(project, ["run", "--env=test"], mlflow_server, timeout=1200)
    assert result.returncode == 0, (result.stdout[-6000:], result.stderr[-6000:])
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    runs = experiment_runs(client, experiment)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return {"project": project, "experiment": experiment, "client": client, "runs": runs,
            "parents": parents, "result": result}  # fmt: skip


# --- parallel runs (`make test`: two pytest-xdist workers) --------------------------------------
# Each test file is one unit of work, so its module fixtures run once. The files that share the
# end-to-end run or the Ray cluster form one unit, run first on one worker: those session
# fixtures cost minutes and a gigabyte each. (xdist's own `--dist loadgroup` rewrites
# `item._nodeid`, which pytest 9 no longer reads, so the grouping is done here.)
SHARED_SESSION_FIXTURES = frozenset({"e2e", "serving_model", "ray_cluster", "service"})
SHARED_SESSION_PATHS = (
    "tests/serving/",
    "tests/rollout/",
    "tests/monitoring/",
    "tests/ops/",
    "tests/test_end_to_end.py",
    "tests/test_notebook.py",
)
SHARED_SESSION_UNIT = "shared-session"


def _work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return SHARED_SESSION_UNIT if path.startswith(SHARED_SESSION_PATHS) else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the collection order: the shared unit first
    return FileScheduling(config, log)


# Tests that deploy their own Serve application on the shared cluster run before the session
# `service` exists: two applications cannot both hold the route prefix "/".
OWN_APPLICATION_PATHS = ("tests/rollout/",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(OWN_APPLICATION_PATHS))  # stable
    if not hasattr(config, "workerinput"):  # not an xdist worker (workers do the collecting)
        return
    stray = sorted(
        {
            item.nodeid.split("::", 1)[0]
            for item in items
            if SHARED_SESSION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            and _work_unit(item.nodeid) != SHARED_SESSION_UNIT
        }
    )
    if stray:
        raise pytest.UsageError(
            f"{', '.join(stray)} use(s) a shared session fixture "
            f"({', '.join(sorted(SHARED_SESSION_FIXTURES))}) but is not in SHARED_SESSION_PATHS "
            "(tests/conftest.py): add it there, or a second worker repeats those fixtures"
        )
    items.sort(key=lambda item: _work_unit(item.nodeid) != SHARED_SESSION_UNIT)  # stable
