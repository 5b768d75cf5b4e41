"""One real Ray cluster (``ray start --head --block``, a separate process) and one service on it,
shared by every test package (a pytest plugin of ``tests/conftest.py``: Ray's cold start costs
17-34 s and 1.2 GB, so a session starts it once).

The session reuses the end-to-end workflow run (``e2e``: ``kedro run --env=test`` against the real
MLflow server), whose promotion registered self-contained pyfunc versions. The service serves
``sensorops-classifier@serving-test``, an alias only these tests move, so the end-to-end tests'
aliases stay untouched. Both processes are stopped by PID (their whole process trees).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port, kill_process_tree

ALIAS = "serving-test"


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP call; returns ``(status, headers with lower-case names, parsed JSON or text)``."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, payload = resp.status, _lower(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, payload = exc.code, _lower(exc.headers), exc.read()
    try:
        return status, hdrs, json.loads(payload)
    except ValueError:
        return status, hdrs, payload.decode()


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _wait(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> list[str]:
    """The replica URLs ``sensorops serve`` printed once ready (``replicas: URL ...``).

    With direct ingress Serve gives each replica the lowest free port of the cluster's range, so
    a service that shares the cluster with another application (or restarts while its old port
    is quarantined) may listen on another port than asked; the service finds and prints them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()[-5000:]}")
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("replicas: "):
                urls = line.split()[1:]
                status, _, body = http("GET", f"{urls[0]}/ready", timeout=3)
                if status == 200 and isinstance(body, dict) and body.get("ready"):
                    return urls
        time.sleep(1.0)
    raise RuntimeError(f"service not ready after {timeout}s:\n{log.read_text()[-5000:]}")


class ServiceProcess:
    """``sensorops serve`` as a subprocess joined to the session's Ray cluster (restartable)."""

    def __init__(
        self, project: Path, args: list[str], env: dict[str, str], url: str, workdir: Path
    ) -> None:
        self.project, self.args, self.env, self.url, self.workdir = project, args, env, url, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.urls = [url]

    def start(self, timeout: float = 300.0) -> None:
        self.starts += 1
        log = self.workdir / f"serve-{self.starts}.log"
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sensorops.cli", "serve", *self.args],
                cwd=self.project, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.urls = _wait(self.proc, log, timeout)
        self.url = self.urls[0]

    def stop(self) -> None:
        """SIGTERM the driver (it deletes its application: the replicas and their job tasks die;
        Serve's controller stays up on the cluster)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_process_tree(self.proc)
        self.proc = None


@pytest.fixture(scope="session")
def serving_model(e2e: dict[str, Any]) -> dict[str, Any]:
    """The e2e run's registered model with alias ``serving-test`` on its staged version."""
    client = e2e["client"]
    name = "sensorops-classifier"
    staged = client.get_model_version_by_alias(name, "staging")
    client.set_registered_model_alias(name, ALIAS, staged.version)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    return {"name": name, "version": str(staged.version), "versions": [str(v) for v in versions],
            "client": client, "project": e2e["project"]}  # fmt: skip


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A Ray head started by ``ray start --head --block`` (direct ingress on a free port)."""
    workdir = tmp_path_factory.mktemp("ray")
    temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths are limited
    gcs_port, serve_port, client_port, agent_port = (free_port() for _ in range(4))
    env = {**os.environ, "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
           "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(serve_port),
           "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(serve_port + 40),
           "RAY_USAGE_STATS_ENABLED": "0", "NUMBA_NUM_THREADS": "1",
           # a private token: ~/.ray/auth_token is shared with every other Ray on the machine
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    ray_bin = Path(sys.executable).with_name("ray")
    log = workdir / "ray.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(ray_bin), "start", "--head", "--block", f"--port={gcs_port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=4", f"--temp-dir={temp_dir}",
             f"--ray-client-server-port={client_port}", f"--dashboard-agent-listen-port={agent_port}",
             "--include-dashboard=false", "--disable-usage-stats"],
            env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield {"address": f"127.0.0.1:{gcs_port}", "serve_port": serve_port, "env": env,
                   "proc": proc, "log": log, "workdir": workdir}  # fmt: skip
        finally:
            kill_process_tree(proc)


@pytest.fixture(scope="session")
def service(
    serving_model: dict[str, Any],
    ray_cluster: dict[str, Any],
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    """The service on the cluster, serving ``NAME@serving-test`` (test knobs on)."""
    out = tmp_path_factory.mktemp("serving_out")
    params = out / "serving.yml"
    params.write_text(yaml.safe_dump({"serving": {
        "batching": {"max_batch_size": 16, "max_wait_ms": 20.0},
        "reload": {"poll_s": 0.5},
        "prediction_log": {"dir": str(out / "prediction_log"), "flush_records": 50, "flush_s": 1.0},
        "jobs": {"dir": str(out / "jobs"), "batch_size": 16},
        "debug_delay_header": True,
    }}))  # fmt: skip
    port = ray_cluster["serve_port"]
    svc = ServiceProcess(
        serving_model["project"],
        [f"{serving_model['name']}@{ALIAS}", "--ray-address", ray_cluster["address"],
         "--tracking-uri", mlflow_server, "--port", str(port), "--params", str(params)],
        ray_cluster["env"], f"http://127.0.0.1:{port}", out,
    )  # fmt: skip
    svc.out = out  # type: ignore[attr-defined]
    try:
        svc.start()
        yield svc
    finally:
        svc.stop()
