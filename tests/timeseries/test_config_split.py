"""Strict configs with readable errors, YAML defaults, and the series-level split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from sensorops.timeseries.config import (
    AblationConfig,
    AlignmentConfig,
    ContractConfig,
    NormalizeConfig,
    OutlierConfig,
    ReportingConfig,
    SourceConfig,
    SplitConfig,
    parse_config,
)
from sensorops.timeseries.errors import ContractError, IngestionConfigError
from sensorops.timeseries.split import assign_splits

ROOT = Path(__file__).resolve().parents[2]


def test_literal_error_lists_options() -> None:
    with pytest.raises(IngestionConfigError) as info:
        parse_config(AlignmentConfig, {"dtw": {"window": "sakoe-chiba"}}, "ingestion.alignment")
    assert str(info.value) == (
        "ingestion.alignment.dtw.window must be one of ['none', 'sakoe_chiba', 'itakura']; got 'sakoe-chiba'"
        "; did you mean 'sakoe_chiba'?"
    )


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(
        IngestionConfigError, match=r"ingestion.outliers.contamnation is not a known key"
    ):
        parse_config(OutlierConfig, {"contamnation": 0.1}, "ingestion.outliers")


def test_source_needs_path() -> None:
    with pytest.raises(
        IngestionConfigError, match=r"source\.path is required when source\.kind is .long_table."
    ):
        parse_config(SourceConfig, {"kind": "long_table"}, "ingestion.source")


def test_base_yaml_equals_model_defaults() -> None:
    params = yaml.safe_load((ROOT / "conf/base/parameters_ingestion.yml").read_text())["ingestion"]
    models = {
        "source": SourceConfig,
        "contract": ContractConfig,
        "split": SplitConfig,
        "outliers": OutlierConfig,
        "alignment": AlignmentConfig,
        "normalize": NormalizeConfig,
        "reporting": ReportingConfig,
        "ablation": AblationConfig,
    }
    assert set(params) == set(models)
    for key, model in models.items():
        assert parse_config(model, params[key], f"ingestion.{key}") == model(), key
        assert params[key] == model().model_dump(), key


def test_test_env_params_parse() -> None:
    params = yaml.safe_load((ROOT / "conf/test/parameters_ingestion.yml").read_text())["ingestion"]
    assert parse_config(SourceConfig, params["source"], "s").kind == "synthetic"
    parse_config(OutlierConfig, params["outliers"], "o")
    parse_config(AlignmentConfig, params["alignment"], "a")
    parse_config(AblationConfig, params["ablation"], "b")


def _per_series(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("series_id").agg(
        label=("label", "first"), split=("split", "first"), n=("split", "nunique")
    )


def test_split_is_by_series_stratified_and_seeded(small_synthetic) -> None:
    frame = small_synthetic.frame
    a = assign_splits(frame, SplitConfig(test_fraction=0.2, val_fraction=0.25, seed=1))
    b = assign_splits(frame, SplitConfig(test_fraction=0.2, val_fraction=0.25, seed=1))
    pd.testing.assert_frame_equal(a, b)
    assert "split" not in frame.columns  # input not modified
    per = _per_series(a)
    assert (per["n"] == 1).all()  # never rows of one series across splits
    table = pd.crosstab(per["label"], per["split"])
    assert (table["test"] == 6).all() and (table["val"] == 6).all() and (table["train"] == 18).all()
    c = assign_splits(frame, SplitConfig(test_fraction=0.2, val_fraction=0.25, seed=2))
    assert not _per_series(c)["split"].equals(per["split"])


def test_provided_split_is_respected_and_val_carved_from_train(small_synthetic) -> None:
    frame = small_synthetic.frame
    ids = sorted(frame.series_id.unique())
    given = {sid: ("test" if i % 4 == 0 else "train") for i, sid in enumerate(ids)}
    frame = frame.assign(split=frame.series_id.map(given))
    out = _per_series(assign_splits(frame, SplitConfig(val_fraction=0.2)))
    assert (out.loc[[s for s in ids if given[s] == "test"], "split"] == "test").all()
    carved = out.index[out["split"] == "val"]
    assert len(carved) > 0 and all(given[s] == "train" for s in carved)


@pytest.mark.parametrize(
    ("rule", "missing"),
    [
        (lambda i: "train" if i % 4 else "val", "no 'test' series"),
        (lambda i: "test" if i % 2 else "val", "no 'train' series"),
        (lambda i: "val", "no 'train' and no 'test' series"),
    ],
)
def test_provided_split_without_train_or_test_is_an_error(small_synthetic, rule, missing) -> None:
    frame = small_synthetic.frame
    ids = sorted(frame.series_id.unique())
    given = {sid: rule(i) for i, sid in enumerate(ids)}
    frame = frame.assign(split=frame.series_id.map(given))
    with pytest.raises(ContractError, match=rf"column 'split' marks {missing}"):
        assign_splits(frame, SplitConfig())
