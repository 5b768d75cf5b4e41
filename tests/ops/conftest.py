"""A throwaway PostgreSQL cluster and the team MLflow server on it, once per test session.

- :func:`postgres`: ``initdb``/``pg_ctl`` (PostgreSQL is on the machine image; ``initdb`` refuses
  root, so as root they run as the ``postgres`` user) on a free 127.0.0.1 port, its unix socket
  in the cluster's own temp folder; stopped (``pg_ctl stop -m immediate``) and deleted at the end.
- :func:`team_server`: ``pipelines/mlflow-team.sh`` itself (the recipe behind ``make
  mlflow-team``) on a free loopback port: that PostgreSQL as backend and auth store,
  ``--serve-artifacts`` into a local folder, ``--app-name basic-auth``. Its admin password is
  random per session; the secret-scan tests look for it (and the users' passwords) everywhere.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, free_port, kill_process_tree, wait_healthy

PG_BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/bin")


def _pg_tool(name: str) -> str:
    for folder in (os.environ.get("SENSOROPS_PG_BIN", ""), *PG_BIN_DIRS):
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found is None:  # not a skip: the team-server tests are part of `make test`
        pytest.fail(f"PostgreSQL's {name} is not installed (looked in {PG_BIN_DIRS} and PATH)")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    """``cmd`` as the ``postgres`` user when we are root (``initdb`` refuses root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    """A running throwaway cluster: ``uri`` = ``postgresql+psycopg://mlflow@127.0.0.1:PORT/mlflow``."""

    uri: str
    port: int
    folder: Path


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    folder = Path(
        tempfile.mkdtemp(prefix="sensorops-pg-")
    )  # under /tmp: the postgres user can reach it
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = free_port()
    data, log = folder / "db", folder / "postgres.log"
    subprocess.run(
        _as_postgres([_pg_tool("initdb"), "-D", str(data), "-A", "trust", "-U", "mlflow"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = _pg_tool("pg_ctl")
    started = subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert started.returncode == 0, (started.stdout, started.stderr, log.read_text()[-3000:])
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="mlflow", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE mlflow")
        yield Postgres(f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow", port, folder)
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class TeamServer:
    """The auth-enabled team server; ``secrets`` are every password the tests hand out."""

    uri: str
    admin: str
    admin_password: str
    folder: Path
    log: Path
    secrets: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def login(self, user: str, password: str) -> Iterator[None]:
        """``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` set for the ``with`` block (this process)."""
        saved = {
            k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
        }
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
            user,
            password,
        )
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def add_user(self, name: str) -> str:
        """Create ``name`` with a random password (remembered for the secret scan); return it."""
        from mlflow.server import get_app_client

        password = f"pw-{secrets.token_hex(8)}"
        self.secrets.append(password)
        with self.login(self.admin, self.admin_password):
            get_app_client("basic-auth", tracking_uri=self.uri).create_user(name, password)
        return password

    def grant(self, user: str, resource_type: str, resource_id: str, permission: str) -> None:
        """As admin: ``user`` gets ``permission`` (READ, EDIT, MANAGE...) on one resource."""
        from mlflow.server import get_app_client

        with self.login(self.admin, self.admin_password):
            get_app_client("basic-auth", tracking_uri=self.uri).grant_user_permission(
                user, resource_type, resource_id, permission
            )


@pytest.fixture(scope="session")
def team_server(postgres: Postgres) -> Iterator[TeamServer]:
    folder = postgres.folder / "team"
    folder.mkdir()
    port, admin_password = free_port(), f"adm-{secrets.token_hex(10)}"
    env = {
        **os.environ,
        "MLFLOW": str(Path(sys.executable).with_name("mlflow")),
        "MLFLOW_BACKEND_STORE_URI": postgres.uri,
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_TEAM_DIR": str(folder),
        "MLFLOW_TEAM_PORT": str(port),
    }
    log = folder / "server.log"
    uri = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(PROJECT_ROOT / "pipelines" / "mlflow-team.sh")],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(uri, proc, log, timeout=120)
            yield TeamServer(uri, "admin", admin_password, folder, log, [admin_password])
        finally:
            kill_process_tree(proc)
            time.sleep(0.2)
