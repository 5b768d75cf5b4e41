"""PreprocessingState: the pipeline's own ingestion steps, frozen, reproduce the model input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sensorops.contracts.preprocessing import (
    CompiledIForest,
    InputError,
    PreprocessingError,
    PreprocessingState,
)
from sensorops.timeseries.config import (
    AlignmentConfig,
    OutlierConfig,
    ReferenceConfig,
    SourceConfig,
    SplitConfig,
    SyntheticConfig,
)
from sensorops.timeseries.prepare import align, clean, normalize
from sensorops.timeseries.series import long_to_series, series_to_long
from sensorops.timeseries.sources import load_source
from sensorops.timeseries.split import assign_splits


@pytest.fixture(scope="module")
def fitted() -> dict:
    """Run ingestion's clean -> (parquet round trip) -> align -> normalize on small synthetic data."""
    raw = load_source(
        SourceConfig(
            kind="synthetic",
            synthetic=SyntheticConfig(n_series=48, n_channels=3, length=40, seed=3),
        )
    )
    frame = assign_splits(raw, SplitConfig(test_fraction=0.25, val_fraction=0.2, seed=1))
    ocfg = OutlierConfig(n_estimators=50)
    result, filt = clean(frame, ocfg)
    cleaned = long_to_series(series_to_long(result.series))
    acfg = AlignmentConfig(reference=ReferenceConfig(method="medoid", max_series=8))
    aligned, _, _ = align(cleaned, acfg)
    mi, scaler = normalize(aligned)
    artifacts = {
        "outlier_model": {"config": ocfg.model_dump(), "filter": filt},
        "dtw_references": dict(aligned.metadata["alignment"]),
        "normalization_stats": {"fitted_on": "train", "channels": scaler.to_dict(mi.channels)},
    }
    return {"frame": frame, "mi": mi, "filter": filt, **artifacts}


def _state(fitted: dict) -> PreprocessingState:
    return PreprocessingState.from_artifacts(
        fitted["outlier_model"],
        json.loads(json.dumps(fitted["dtw_references"])),  # as read back from the JSON file
        fitted["normalization_stats"],
        classes=fitted["mi"].classes,
    )


def test_raw_test_series_reproduce_the_model_input(fitted: dict, tmp_path: Path) -> None:
    state = PreprocessingState.load(_state(fitted).save(tmp_path / "state"))
    test = fitted["frame"][fitted["frame"]["split"] == "test"]
    series = long_to_series(test)
    X, info = state.transform(state.check(series.values))
    order = {sid: i for i, sid in enumerate(series.ids)}
    idx = [order[str(s)] for s in fitted["mi"].series_ids["test"]]
    np.testing.assert_array_equal(X[idx], fitted["mi"].X["test"])
    assert {i["reference"] for i in info} <= set(state.alignment.reference_names)
    assert state.channels == fitted["mi"].channels


def test_compiled_point_models_score_exactly_like_pyod(fitted: dict) -> None:
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(500, 3)) * rng.choice([1.0, 15.0], size=(500, 1))
    for model in fitted["filter"].point_models_:
        fast = CompiledIForest(model)
        np.testing.assert_array_equal(fast.decision_function(pts), model.decision_function(pts))


def test_state_is_frozen_and_validates_artifacts(fitted: dict) -> None:
    state = _state(fitted)
    with pytest.raises(AttributeError):
        state.min_length = 2  # type: ignore[misc]
    with pytest.raises(ValueError):
        state.mean[0] = 1.0
    stats = fitted["normalization_stats"]
    with pytest.raises(PreprocessingError, match=r"lacks channel\(s\) \['pressure'\]"):
        PreprocessingState.from_artifacts(
            fitted["outlier_model"], fitted["dtw_references"], stats, fitted["mi"].classes,
            channels=[*fitted["mi"].channels[:2], "pressure"],
        )  # fmt: skip
    one = {"channels": dict(list(stats["channels"].items())[:1])}
    with pytest.raises(PreprocessingError, match=r"DTW references have shape \(\d+, \d+, 3\)"):
        PreprocessingState.from_artifacts(
            fitted["outlier_model"], fitted["dtw_references"], one, fitted["mi"].classes
        )
    with pytest.raises(PreprocessingError, match="does not exist"):
        PreprocessingState.load("/nonexistent/state")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros((40, 2)), "2 channels; expected 3"),
        (np.zeros((2, 3)), "2 time steps; expected at least 4"),
        (np.array([["a", "b", "c"]] * 10), "must hold numbers"),
        (np.zeros(40), "must be 2-D"),
        (np.r_[np.full((20, 3), np.nan), np.zeros((20, 3))], "entirely NaN|consecutive NaNs"),
    ],
)
def test_bad_series_name_the_field(fitted: dict, value: np.ndarray, match: str) -> None:
    state = _state(fitted)
    with pytest.raises(InputError, match=match) as info:
        state.check([np.zeros((40, 3)), value], field="instances", max_nan_run=8)
    assert info.value.field == "instances[1]"


def test_nan_run_limit(fitted: dict) -> None:
    state = _state(fitted)
    x = np.random.default_rng(0).normal(size=(40, 3))
    x[5:15, 1] = np.nan
    with pytest.raises(InputError, match="run of 10 consecutive NaNs"):
        state.check([x], max_nan_run=8)
    (ok,) = state.check([x], max_nan_run=10)
    X, info = state.transform([ok])
    assert np.isfinite(X).all() and info[0]["nans_filled"] == 10
