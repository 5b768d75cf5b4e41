"""Sources: long tables, .ts files through aeon, bundled BasicMotions (offline), synthetic."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sensorops.timeseries.config import SourceConfig, SyntheticConfig
from sensorops.timeseries.errors import SourceError
from sensorops.timeseries.sources import load_source, read_long_table, read_ts_file
from sensorops.timeseries.synthetic import generate_industrial


def test_basic_motions_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("BasicMotions must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    frame = load_source(SourceConfig(kind="basicmotions"))
    per_series = frame.groupby("series_id").agg(
        n=("t", "size"), split=("split", "first"), label=("label", "first")
    )
    assert len(per_series) == 80
    assert (per_series["n"] == 100).all()
    assert per_series["split"].value_counts().to_dict() == {"train": 40, "test": 40}
    assert sorted(per_series["label"].unique()) == ["badminton", "running", "standing", "walking"]
    assert [c for c in frame.columns if c not in ("series_id", "t", "label", "split")] == [
        "acc_x",
        "acc_y",
        "acc_z",
        "gyr_x",
        "gyr_y",
        "gyr_z",
    ]


TS_TEXT = """@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1.0,2.0,3.0,4.0:4.0,3.0,2.0,1.0:up
2.0,3.0,4.0:4.0,3.0,2.0:up
5.0,4.0,3.0,2.0,1.0:0.0,1.0,2.0,3.0,4.0:down
"""


def test_ts_file_variable_length(tmp_path: Path) -> None:
    path = tmp_path / "Tiny_TRAIN.ts"
    path.write_text(TS_TEXT)
    frame = read_ts_file(path, channels=["a", "b"])
    sizes = frame.groupby("series_id").size().tolist()
    assert sizes == [4, 3, 5]
    first = frame[frame.series_id == "Tiny_TRAIN_00000"]
    np.testing.assert_array_equal(first["a"], [1, 2, 3, 4])
    np.testing.assert_array_equal(first["b"], [4, 3, 2, 1])
    assert frame.groupby("series_id")["label"].first().tolist() == ["up", "up", "down"]


def test_ts_train_and_test_files(tmp_path: Path) -> None:
    (tmp_path / "a.ts").write_text(TS_TEXT)
    (tmp_path / "b.ts").write_text(TS_TEXT)
    frame = load_source(
        SourceConfig(kind="ts", path=str(tmp_path / "a.ts"), test_path=str(tmp_path / "b.ts"))
    )
    assert frame.groupby("split")["series_id"].nunique().to_dict() == {"test": 3, "train": 3}


def test_ts_garbage_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.ts"
    path.write_text("this is not a ts file\n1,2,3\n")
    with pytest.raises(SourceError, match=r"bad.ts is not a valid UEA/UCR .ts file"):
        read_ts_file(path)


def test_csv_and_parquet_roundtrip(tmp_path: Path) -> None:
    frame = generate_industrial(SyntheticConfig(n_series=8, n_channels=2, length=20, seed=1)).frame
    frame.to_csv(tmp_path / "x.csv", index=False)
    frame.to_parquet(tmp_path / "x.parquet")
    from_csv = read_long_table(tmp_path / "x.csv")
    from_pq = read_long_table(tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(from_pq, frame)
    np.testing.assert_allclose(from_csv["vibration"], frame["vibration"])


def test_corrupt_parquet_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(SourceError, match=r"bad.parquet could not be read as parquet \(corrupt"):
        read_long_table(tmp_path / "bad.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SourceError, match=r"empty.csv is empty \(0 bytes\)"):
        read_long_table(tmp_path / "empty.csv")
    with pytest.raises(SourceError, match="does not exist"):
        read_long_table(tmp_path / "missing.csv")


def test_synthetic_seeded_with_all_defects() -> None:
    cfg = SyntheticConfig(n_series=40, n_channels=3, length=64, anomalous_fraction=0.1, seed=5)
    a, b = generate_industrial(cfg), generate_industrial(cfg)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    c = generate_industrial(cfg.model_copy(update={"seed": 6}))
    assert not a.frame[["vibration"]].equals(c.frame[["vibration"]])
    lengths = a.frame.groupby("series_id").size()
    assert lengths.nunique() > 3  # variable lengths
    steps = a.frame.groupby("series_id")["t"].apply(lambda t: int(np.diff(t.to_numpy())[0]))
    assert steps.nunique() > 1  # different sampling of t
    assert a.frame["vibration"].isna().any()  # dropouts
    assert len(a.anomalous) == 4 and sum(a.n_spikes.values()) > 0
    assert a.frame.groupby("series_id")["label"].first().value_counts().min() >= 9  # balanced
