"""One run per project folder (:mod:`sensorops.runlock`) and start-of-run hygiene (:mod:`sensorops.hygiene`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sensorops.hygiene import NOTE_TAG, close_dead_runs, process_tags, remove_stale_tmp
from sensorops.runlock import LOCK_NAME, RunLock, RunLockBusy, is_alive, process_identity

HOLD = """
import sys, time
from sensorops.runlock import RunLock
RunLock(sys.argv[1], ["training"]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def _holder(data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_refused_at_once_naming_the_holder(tmp_path):
    proc = _holder(tmp_path)
    try:
        t0 = time.monotonic()
        with pytest.raises(RunLockBusy) as info:
            RunLock(tmp_path, ["export"]).acquire()
        assert time.monotonic() - t0 < 5  # refused at once, not after a wait
        message = str(info.value)
        assert f"PID {proc.pid} on {socket.gethostname()}" in message
        assert "['training']" in message and "one run per project folder" in message
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == proc.pid  # left behind
    with caplog.at_level("WARNING"), RunLock(tmp_path, ["export"]) as lock:
        assert lock.took_over["pid"] == proc.pid
        assert "taking over the run lock" in caplog.text and "dead" in caplog.text
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["pipelines"] == ["export"]
        assert {"host", "started_at", "start_ticks"} <= set(info)
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released


def test_separate_checkouts_do_not_block_each_other(tmp_path):
    proc = _holder(tmp_path / "a" / "data")
    try:
        with RunLock(tmp_path / "b" / "data", ["training"]):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_a_second_session_in_one_process_takes_over(tmp_path):
    first = RunLock(tmp_path).acquire()
    second = RunLock(tmp_path).acquire()  # e.g. a notebook running a second session
    assert first._fd is None and second._fd is not None
    second.release()


def test_is_alive_tells_recycled_and_dead_pids():
    me = process_identity()
    assert is_alive(me["pid"], me["host"], me["start_ticks"]) is True
    assert is_alive(me["pid"], me["host"], int(me["start_ticks"]) + 1) is False  # a recycled PID
    assert is_alive(me["pid"], "some-other-host") is None
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert is_alive(int(proc.stdout), me["host"]) is False


def test_stale_tmp_files_of_killed_writers_are_removed(tmp_path):
    models = tmp_path / "06_models"
    models.mkdir()
    stale = models / ".model_fp32.onnx.abc123.tmp"
    stale.write_bytes(b"")
    kept = [models / "model_fp32.onnx", models / "notes.tmp"]  # not atomic-write leftovers
    for p in kept:
        p.write_bytes(b"x")
    assert remove_stale_tmp(tmp_path) == [stale]
    assert not stale.exists() and all(p.exists() for p in kept)


def test_runs_of_dead_processes_are_marked_killed(mlflow_server):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.create_experiment(f"hygiene-{uuid.uuid4().hex[:8]}")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    orphan = client.create_run(
        exp, tags={**process_tags(os.getpid()), "sensorops.pid": str(dead_pid)}
    )
    child = client.create_run(exp, tags={"mlflow.parentRunId": orphan.info.run_id})
    alive = client.create_run(exp, tags=process_tags())
    foreign = client.create_run(exp, tags={"sensorops.pid": "1", "sensorops.host": "elsewhere"})

    killed = close_dead_runs(client, [exp])

    assert killed == [orphan.info.run_id, child.info.run_id]
    got = client.get_run(orphan.info.run_id)
    assert got.info.status == "KILLED" and f"process {dead_pid}" in got.data.tags[NOTE_TAG]
    assert client.get_run(child.info.run_id).info.status == "KILLED"
    for run in (alive, foreign):
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
        client.set_terminated(run.info.run_id)


def test_kedro_run_in_a_busy_project_folder_is_refused_at_once(
    project_root, tmp_path, mlflow_server
):
    """Issue case 2: a second `kedro run` in one folder stops before any node runs, naming the holder."""
    from tests.kedro_project import copy_project, run_kedro

    project = copy_project(project_root, tmp_path / "project")
    proc = _holder(project / "data")
    try:
        result = run_kedro(
            project, ["run", "--env=test", "--pipelines=ingestion"], mlflow_server, timeout=300
        )
    finally:
        proc.kill()
        proc.wait()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "RunLockBusy" in output and f"PID {proc.pid} on {socket.gethostname()}" in output
    assert not any((project / "data" / "02_intermediate").iterdir())  # no node ran
