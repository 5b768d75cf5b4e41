"""Small seeded sensor data for the data-quality tests (3 classes, 4 channels, 32 steps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sensorops.model_input import SPLITS, ModelInput

CLASSES: tuple[str, ...] = ("fault", "idle", "pump")
CHANNELS: tuple[str, ...] = ("c0", "c1", "c2", "c3")
PER_SPLIT: dict[str, int] = {"train": 8, "val": 3, "test": 3}


def make_long_table(
    seed: int = 0, length: int = 32, per_split: dict[str, int] | None = None
) -> pd.DataFrame:
    """Long table: ``per_split[split]`` series per class; classes differ in amplitude and offset.

    Channels have different frequencies and random phases, so they are nearly uncorrelated.
    """
    rng = np.random.default_rng(seed)
    parts = []
    n = 0
    t = np.arange(length)
    for split, count in (per_split or PER_SPLIT).items():
        for ci, cls in enumerate(CLASSES):
            for _ in range(count):
                data: dict[str, Any] = {"series_id": f"s{n:04d}", "t": t}
                for j, ch in enumerate(CHANNELS):
                    phase = rng.uniform(0, 2 * np.pi)
                    wave = (1.0 + ci) * np.sin(2 * np.pi * (j + 1) * t / length + phase)
                    data[ch] = wave + 0.5 * ci + rng.normal(0.0, 0.2, length)
                data["label"] = cls
                data["split"] = split
                parts.append(pd.DataFrame(data))
                n += 1
    return pd.concat(parts, ignore_index=True)


def long_table_to_model_input(frame: pd.DataFrame) -> ModelInput:
    """Arrays ``(n_series, length, n_channels)`` per split, normalized with train statistics."""
    train = frame[frame["split"] == "train"]
    mean = train[list(CHANNELS)].mean().to_numpy()
    std = train[list(CHANNELS)].std().to_numpy()
    X, y, ids = {}, {}, {}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        series = list(dict.fromkeys(part["series_id"]))
        arr = np.stack(
            [part.loc[part["series_id"] == s, list(CHANNELS)].to_numpy() for s in series]
        )
        X[split] = ((arr - mean) / std).astype(np.float32)
        labels = part.groupby("series_id", sort=False)["label"].first().reindex(series)
        y[split] = np.array([CLASSES.index(v) for v in labels], dtype=np.int64)
        ids[split] = np.array(series)
    return ModelInput(
        X=X, y=y, series_ids=ids, classes=CLASSES, channels=CHANNELS, metadata={"source": "test"}
    )


@pytest.fixture(scope="session")
def gx_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One GE project folder for the whole session (the context is cached per process)."""
    return tmp_path_factory.mktemp("gx_project")


@pytest.fixture
def params(gx_project: Path, tmp_path: Path) -> dict[str, Any]:
    """``data_quality`` parameters with defaults, a shared GE project and a per-test Data Docs folder."""
    return {"gx_project_dir": str(gx_project), "data_docs_dir": str(tmp_path / "data_docs")}


@pytest.fixture(scope="session")
def good_table() -> pd.DataFrame:
    return make_long_table()


@pytest.fixture
def table(good_table: pd.DataFrame) -> pd.DataFrame:
    """A fresh copy of the passing table, for a test to break."""
    return good_table.copy()
