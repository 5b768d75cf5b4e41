"""A tracking server killed mid-training: the run fails fast and clearly, the rerun completes.

The training pipeline runs on the end-to-end run's data against a server of its own (sqlite
store, so it can be killed and restarted on the same port and store). MLflow's HTTP retries are
bounded by the project (``sensorops.tracking.HTTP_RETRY_DEFAULTS``); this test shortens the
bound further through the same environment variables a user would set. The rerun also lists
the sockets the run's processes listen on: single-node training must listen on loopback only.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    _descendants,
    free_port,
    kill_process_tree,
    start_mlflow_server,
    wait_healthy,
)
from tests.kedro_project import kedro_env

pytestmark = pytest.mark.slow
EXPERIMENT = "outage"
SHORT_BOUND = {  # each MLflow call gives up after about 1 s against a refused connection
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
FAIL_BOUND_S = 120  # from the kill to the end of `kedro run`, with the short bound above
TRAIN = ["run", "--env=test", "--pipelines=training"]
# the killed run: long enough to kill the server after the first epoch's checkpoint while the
# workers go on training; the rerun keeps the test env's 3 epochs
LONG = "--params=training.trainer.loop.epochs=30"


def _listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by one of ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found: set[tuple[str, int]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((str(ipaddress.ip_address(raw)), int(hex_port, 16)))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class Server:
    """A restartable ``mlflow server`` on one port and one store."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_path = self.workdir / "server.log"
        with open(log_path, "ab") as log:
            self.proc = start_mlflow_server(self.workdir, self.port, log)
        wait_healthy(self.uri, self.proc, log_path)

    def kill(self) -> None:
        if self.proc is not None:
            kill_process_tree(self.proc)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Any:
    srv = Server(tmp_path / "server")
    srv.workdir.mkdir()
    srv.start()
    yield srv
    srv.kill()


def _project(e2e: dict[str, Any], target: Path) -> Path:
    project = Path(shutil.copytree(e2e["project"], target, ignore=shutil.ignore_patterns("build")))
    mlflow_yml = project / "conf" / "base" / "mlflow.yml"
    text = mlflow_yml.read_text()
    mlflow_yml.write_text(text.replace(f"name: {e2e['experiment']}\n", f"name: {EXPERIMENT}\n"))
    return project


def _start(project: Path, uri: str, log: Path, *extra: str) -> subprocess.Popen[str]:
    kedro = Path(sys.executable).with_name("kedro")
    out = open(log, "w")
    return subprocess.Popen(
        [str(kedro), *TRAIN, *extra],
        cwd=project,
        env={**kedro_env(uri), **SHORT_BOUND},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(
    log: Path, proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            pytest.fail(f"kedro ended (rc {proc.returncode}) too early:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    pytest.fail(f"training did not checkpoint within {timeout}s:\n{log.read_text()[-4000:]}")


def test_server_killed_mid_training_fails_fast_and_rerun_completes(
    e2e: dict[str, Any], server: Server, tmp_path: Path, record_property: Any
) -> None:
    project = _project(e2e, tmp_path / "project")
    first_log = tmp_path / "first.log"
    last = project / "data" / "06_models" / "training" / "checkpoints" / "last.pt"
    started = time.time()
    first = _start(project, server.uri, first_log, LONG)
    # the workers are training: their first epoch-end checkpoint is written
    _wait_for(first_log, first, lambda: last.is_file() and last.stat().st_mtime > started, 300)
    server.kill()
    killed_at = time.monotonic()
    try:
        rc = first.wait(timeout=FAIL_BOUND_S)
    except subprocess.TimeoutExpired:
        kill_process_tree(first)  # type: ignore[arg-type]
        pytest.fail(f"kedro run still going {FAIL_BOUND_S}s after the server died")
    time_to_fail = time.monotonic() - killed_at
    output = first_log.read_text(errors="replace")
    assert rc != 0, output[-4000:]
    block = output[output.index("error: node 'train_model' failed") :].splitlines()
    assert len(block) <= 15, block
    assert block[1].startswith("  TrackingOutage: MLflow tracking server " + server.uri), block
    assert "stopped answering during training" in block[1] and "Traceback" not in output
    # rank 0's tracking did not crash a worker (that would be ChildFailedError / a restart)
    assert "training workers failed" not in output and "will restart worker group" not in output
    checkpoints = list((project / "data" / "06_models").rglob("last.pt"))
    assert checkpoints, "training did not checkpoint before the run failed"

    server.start()  # same port, same store
    second_log = tmp_path / "second.log"
    resumed_at = time.monotonic()
    second = _start(project, server.uri, second_log)
    listeners: set[tuple[str, int]] = set()
    while second.poll() is None:
        listeners |= _listening([second.pid, *_descendants(second.pid)])
        time.sleep(0.2)
    time_to_complete = time.monotonic() - resumed_at
    output = second_log.read_text(errors="replace")
    assert second.returncode == 0, output[-6000:]
    assert listeners, "saw no listening socket of the training run (the rendezvous store)"
    wide = sorted(x for x in listeners if not _is_loopback(x[0]))
    assert not wide, f"training listened beyond loopback: {wide}"

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=50)
    statuses = sorted(r.info.status for r in runs)
    assert "RUNNING" not in statuses, statuses  # the outage's runs were marked at the next start
    assert "KILLED" in statuses and statuses.count("FINISHED") >= 2, statuses
    record_property("time_to_fail_s", round(time_to_fail, 1))
    record_property("time_to_complete_s", round(time_to_complete, 1))
    sys.stderr.write(
        f"\noutage: fail {time_to_fail:.1f} s after the kill; rerun {time_to_complete:.1f} s\n"
    )
