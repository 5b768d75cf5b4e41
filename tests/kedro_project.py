"""Helpers to run the real project (Kedro CLI and sessions) in an isolated copy.

The copy holds ``pyproject.toml``, ``conf/``, empty data layers and an empty ``src/`` (Kedro requires
the folder); the ``sensorops`` code is the installed, editable one. Runs write only inside the copy, never into the checkout's
``data/`` or ``mlflow.db``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LAYERS = (
    "01_raw", "02_intermediate", "03_primary", "04_feature",
    "05_model_input", "06_models", "07_model_output", "08_reporting",
)  # fmt: skip


def copy_project(source: Path, target: Path) -> Path:
    """Copy what a Kedro run needs from ``source`` into ``target`` and return ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "pyproject.toml", target / "pyproject.toml")
    shutil.copy2(source / ".telemetry", target / ".telemetry")
    shutil.copytree(
        source / "conf",
        target / "conf",
        ignore=shutil.ignore_patterns("local", "uncommitted", "__pycache__"),
    )
    (target / "conf" / "local").mkdir(exist_ok=True)
    (target / "src").mkdir(exist_ok=True)  # Kedro insists on src/; the code is the editable install
    for layer in LAYERS:
        (target / "data" / layer).mkdir(parents=True, exist_ok=True)
    return target


def kedro_env(tracking_uri: str) -> dict[str, str]:
    """Environment for a ``kedro`` subprocess tracking to ``tracking_uri``."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "KEDRO_DISABLE_TELEMETRY": "true",
        "COLUMNS": "200",
    }
    env.pop("KEDRO_LOGGING_CONFIG", None)
    for name in (
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_RUN_ID",
    ):
        env.pop(name, None)  # the registry follows the tracking URI; no run or experiment leaks in
    return env


def run_kedro(
    project: Path, args: list[str], tracking_uri: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``kedro ARGS`` in ``project`` with the venv's kedro; output captured as text."""
    kedro = Path(sys.executable).with_name("kedro")
    return subprocess.run(
        [str(kedro), *args],
        cwd=project,
        env=kedro_env(tracking_uri),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
