"""The workflow on the user's own data: a long-format parquet and a UEA ``.ts`` file, via --params.

These are the commands README.md shows, run through the real CLI on small generated files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sensorops.model_input import load_model_input
from tests.kedro_project import copy_project, run_kedro

CLASSES = ("idle", "pump", "valve")
CHANNELS = ("vib", "temp", "current")


def make_arrays(
    n_per_class: int = 12, length: int = 48, seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Class-specific sine mixtures: X ``(n, 3, length)`` (aeon layout), y ``(n,)`` of class names."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    xs, ys = [], []
    for k, name in enumerate(CLASSES):
        for _ in range(n_per_class):
            shift = rng.uniform(0, 0.2)
            series = [
                np.sin(2 * np.pi * (k + 1) * (t + shift)),
                0.5 * np.cos(2 * np.pi * (k + 2) * (t + shift)) + 0.1 * k,
                np.sign(np.sin(2 * np.pi * (k + 1) * t)) * 0.3,
            ]
            xs.append(np.stack(series) + 0.05 * rng.normal(size=(3, length)))
            ys.append(name)
    return np.asarray(xs), np.asarray(ys)


def write_long_parquet(path: Path) -> None:
    X, y = make_arrays()
    rows = []
    for i, (series, label) in enumerate(zip(X, y, strict=True)):
        frame = pd.DataFrame(series.T, columns=list(CHANNELS))
        frame.insert(0, "t", np.arange(series.shape[1]))
        frame.insert(0, "series_id", f"machine-{i:03d}")
        frame["label"] = label
        rows.append(frame)
    pd.concat(rows, ignore_index=True).to_parquet(path, index=False)


def write_ts(path: Path) -> None:
    from aeon.datasets import save_to_ts_file

    X, y = make_arrays()
    save_to_ts_file(
        X, y, label_type="classification", path=str(path.parent), problem_name=path.stem
    )


@pytest.mark.parametrize(
    ("kind", "writer", "suffix"),
    [("long_table", write_long_parquet, ".parquet"), ("ts", write_ts, ".ts")],
)
def test_ingestion_and_quality_on_own_file(
    kind, writer, suffix, project_root: Path, tmp_path: Path, mlflow_server: str
) -> None:
    project = copy_project(project_root, tmp_path / "project")
    data = tmp_path / f"my_sensors{suffix}"
    writer(data)
    assert data.exists()
    params = f"ingestion.source.kind={kind},ingestion.source.path={data}"
    if kind == "long_table":
        params += ",ingestion.source.synthetic.n_series=48"  # unrelated keys stay overridable
    result = run_kedro(
        project,
        ["run", "--env=test", "--pipelines=ingestion,data_quality", f"--params={params}"],
        mlflow_server,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    mi = load_model_input(project / "data" / "05_model_input" / "model_input.npz")
    assert set(mi.classes) == set(CLASSES)
    assert mi.n_channels == 3
    if kind == "long_table":
        assert mi.channels == CHANNELS
    assert sum(mi.counts().values()) <= 36
    assert (project / "data" / "08_reporting" / "dq_summary.json").exists()
