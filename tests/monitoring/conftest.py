"""Fixtures of the monitoring tests: a project copy holding the e2e run's data, the e2e staged
model loaded as the service loads it, the training reference, and log writers.

Logs are written through the serving side's own writer (``PartitionedLog``: the contract) with
records scored by the real registered model (its preprocessing and ONNX Runtime session).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sensorops.monitoring import load_monitoring_config
from sensorops.monitoring import simulate as sim
from sensorops.monitoring.replay import write_replay
from sensorops.timeseries.config import SyntheticConfig
from tests.kedro_project import copy_project

# the test env's synthetic source (conf/test/parameters_ingestion.yml): the model's training data
TEST_SOURCE = SyntheticConfig(n_series=48, n_channels=3, length=40)
START = np.datetime64("2026-12-04T10:00:00", "us")


@pytest.fixture(scope="session")
def mon_project(
    e2e: dict[str, Any], project_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A project copy with the e2e run's training data; monitoring pinned to its staged version."""
    client = e2e["client"]
    staged = client.get_model_version_by_alias("sensorops-classifier", "staging")
    project = copy_project(project_root, tmp_path_factory.mktemp("monitoring") / "project")
    for rel in ("data/02_intermediate/sensor_long.parquet", "data/05_model_input/model_input.npz"):
        shutil.copy2(e2e["project"] / rel, project / rel)
    (project / "conf" / "local" / "parameters_monitoring.yml").write_text(
        yaml.safe_dump({"monitoring": {"version": str(staged.version)}})
    )
    return {"project": project, "version": str(staged.version), "client": client,
            "tags": dict(staged.tags)}  # fmt: skip


@pytest.fixture(scope="session")
def mon_model(mon_project: dict[str, Any], mlflow_server: str) -> Any:
    """The staged version's SensorModel, loaded the way the service loads it."""
    from sensorops.monitoring import publish

    return publish.load_model(
        "sensorops-classifier", mon_project["version"], tracking_uri=mlflow_server,
        cache=mon_project["project"] / "data" / "06_models" / "monitoring" / "models",
    )  # fmt: skip


@pytest.fixture(scope="session")
def mon_reference(mon_project: dict[str, Any], mon_model: Any, mlflow_server: str) -> Any:
    """The version's training reference, built by the pipeline's own function (and cached)."""
    import pandas as pd

    from sensorops.model_input import load_model_input
    from sensorops.pipelines.monitoring.nodes import ensure_reference

    project = mon_project["project"]
    cfg = load_monitoring_config({"version": mon_project["version"]})
    cfg = cfg.model_copy(update={"reference": cfg.reference.model_copy(
        update={"cache_dir": str(project / "data" / "06_models" / "monitoring")})})  # fmt: skip
    frame = pd.read_parquet(project / "data/02_intermediate/sensor_long.parquet")
    mi = load_model_input(project / "data/05_model_input/model_input.npz")
    return ensure_reference(
        cfg, mon_project["version"], mon_project["tags"], frame, mi, tracking_uri=mlflow_server
    )


@pytest.fixture(scope="session")
def write_log(mon_model: Any, mon_project: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """``write_log(dir, mode, n, seed, ...)``: scored traffic into a prediction log + feedback."""

    def _write(
        root: Path, mode: str = "none", n: int = 60, seed: int = 1, channel: int = 1,
        labelled: bool = True, raw: bool = False, prefix: str = "sim", **drift: Any,
    ) -> dict[str, Any]:  # fmt: skip
        traffic = sim.synthetic_traffic(TEST_SOURCE, n, seed)
        traffic = sim.apply_drift(traffic, sim.DriftSpec(mode=mode, channel=channel, **drift), seed)  # type: ignore[arg-type]
        recs = write_replay(root, mon_model, mon_project["version"], "sensorops-classifier",
                            traffic, prefix, labelled, raw, start=START, alias="staging")  # fmt: skip
        return {"records": recs, "labels": traffic.labels, "dir": root / "prediction_log"}

    return _write
