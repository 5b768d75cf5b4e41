"""The replay load generator's input checks (its traffic is exercised in test_rollout.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sensorops.rollout.replay import ReplayError, load_series, replay


def _table(path: Path, with_label: bool = True) -> Path:
    rows = [{"series_id": s, "t": t, "acc_x": float(t), "acc_y": 1.0, "split": "test",
             **({"label": f"c{s}"} if with_label else {})}
            for s in range(3) for t in range(5)]  # fmt: skip
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_load_series_gives_channels_by_time_and_labels(tmp_path: Path) -> None:
    series, labels = load_series(_table(tmp_path / "t.parquet"))
    assert [s.shape for s in series] == [(2, 5)] * 3 and labels == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(series[0][0], np.arange(5.0))


def test_bad_input_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="does not exist"):
        load_series(tmp_path / "none.parquet")
    with pytest.raises(ReplayError, match="no 'label' column"):
        load_series(_table(tmp_path / "t.parquet", with_label=False))
    with pytest.raises(ReplayError, match="split == 'train'"):
        load_series(_table(tmp_path / "u.parquet"), split="train")
    with pytest.raises(ReplayError, match="must be positive"):
        replay("http://127.0.0.1:9", [np.zeros((2, 5))], ["a"], rate=0)
