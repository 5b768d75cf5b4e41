"""Where MLflow data goes, and whether that place answers.

Kedro-free helpers used by the project hooks, the CLI and the training launcher.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def find_project(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` whose ``pyproject.toml`` has a ``[tool.kedro]``."""
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                if "[tool.kedro]" in pyproject.read_text(encoding="utf-8"):
                    return folder
            except OSError:
                continue
    return None


def project_root() -> Path:
    """The Kedro project around the working directory, else the checkout this package lives in."""
    return find_project(Path.cwd().resolve()) or PROJECT_ROOT


def embedded_db() -> Path:
    """Path of the embedded tracking store: ``<project root>/mlflow.db``."""
    return project_root() / "mlflow.db"


class TrackingServerUnreachable(RuntimeError):
    """The configured MLflow tracking server does not answer."""


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<project root>/mlflow.db`` (absolute)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{embedded_db()}"


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with instructions, when an ``http(s)`` tracking server does not answer ``/health``.

    Local stores (``sqlite:``, ``postgresql:``, ``file:``...) are not probed here; MLflow's own
    errors for them are already specific.

    Raises:
        TrackingServerUnreachable: names the URI and how to start a local server.
    """
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https"):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            if resp.status == 200:
                return
            problem = f"answered HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # an auth-protected server is up
            return
        problem = f"answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        problem = f"did not answer ({getattr(exc, 'reason', exc)})"
    raise TrackingServerUnreachable(
        f"MLflow tracking server {uri} {problem} at {url}. Start one with `make mlflow-server` "
        f"(serves http://127.0.0.1:5000), point MLFLOW_TRACKING_URI at a running server, or unset "
        f"MLFLOW_TRACKING_URI to use the embedded store sqlite:///{embedded_db()}."
    )


def git_commit(path: Path) -> tuple[str | None, bool]:
    """(HEAD commit, dirty flag) of the git checkout at ``path``; ``(None, False)`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None, False
    return commit or None, bool(dirty)
