"""The raw-data contract: each violation gives an error naming what is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sensorops.timeseries.config import ContractConfig
from sensorops.timeseries.contract import check_contract
from sensorops.timeseries.errors import ContractError


def test_clean_table_passes_sorted_and_typed(sines: pd.DataFrame) -> None:
    shuffled = sines.sample(frac=1.0, random_state=0)
    out = check_contract(shuffled, ContractConfig(), "sines.csv")
    assert list(out.columns) == ["series_id", "t", "ch_a", "ch_b", "label"]
    assert out.groupby("series_id")["t"].apply(lambda t: t.is_monotonic_increasing).all()
    assert out["ch_a"].dtype == np.float64
    assert len(shuffled) == len(sines)  # input not modified
    assert list(shuffled.index) != list(range(len(sines)))


def test_timestamps_and_ignored_text_columns(sines: pd.DataFrame) -> None:
    frame = sines.copy()
    frame["t"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(frame["t"], unit="s")
    frame["operator"] = "alice"
    out = check_contract(frame, ContractConfig(), "x")
    assert "operator" not in out.columns
    assert pd.api.types.is_datetime64_any_dtype(out["t"])


def _bad(frame: pd.DataFrame, match: str, **cfg: object) -> None:
    with pytest.raises(ContractError, match=match):
        check_contract(frame, ContractConfig(**cfg), "data/raw.csv")


def test_missing_label(sines: pd.DataFrame) -> None:
    _bad(sines.drop(columns="label"), r"data/raw.csv: missing required column\(s\) \['label'\]")


def test_misspelled_channel_suggests(sines: pd.DataFrame) -> None:
    _bad(sines, r"channel column 'chb' .*not found.*did you mean 'ch_b'", channels=["ch_a", "chb"])


def test_text_value_in_channel(sines: pd.DataFrame) -> None:
    frame = sines.astype({"ch_a": object})
    frame.loc[5, "ch_a"] = "oops"
    _bad(frame, r"channel column 'ch_a' must be numeric.*'oops' at row 5 \(series 'slow_0', t=5\)")


def test_all_nan_channel(sines: pd.DataFrame) -> None:
    _bad(sines.assign(ch_b=np.nan), r"channel 'ch_b' is entirely NaN")


def test_series_with_all_nan_channel(sines: pd.DataFrame) -> None:
    frame = sines.copy()
    frame.loc[frame.series_id == "fast_2", "ch_b"] = np.nan
    _bad(frame, r"series 'fast_2' has channel 'ch_b' entirely NaN")


def test_duplicate_key(sines: pd.DataFrame) -> None:
    frame = pd.concat([sines, sines.iloc[[3]]])
    _bad(frame, r"duplicate \(series_id, t\), e.g. \('slow_0', 3\)")


def test_single_class(sines: pd.DataFrame) -> None:
    _bad(sines[sines.label == "slow"], r"1 class\(es\) \['slow'\]; expected at least 2")


def test_series_of_length_one(sines: pd.DataFrame) -> None:
    frame = pd.concat([sines, sines.iloc[[0]].assign(series_id="lonely")])
    _bad(frame, r"shorter than contract.min_length=4: 'lonely' \(1 step\)")


def test_inf_values(sines: pd.DataFrame) -> None:
    frame = sines.copy()
    frame.loc[7, "ch_b"] = np.inf
    _bad(frame, r"channel 'ch_b' has 1 infinite value\(s\) at row 7")


def test_empty_table() -> None:
    _bad(pd.DataFrame({"series_id": [], "t": [], "label": []}), "the table is empty")


def test_label_must_be_constant_per_series(sines: pd.DataFrame) -> None:
    frame = sines.copy()
    frame.loc[0, "label"] = "fast"
    _bad(frame, r"series 'slow_0' has several values in column 'label'")


def test_bad_split_value(sines: pd.DataFrame) -> None:
    _bad(
        sines.assign(split="training"), r"column 'split' must be one of \['train', 'val', 'test'\]"
    )
