"""The textbook 1-NN DTW baseline: reproduces the UEA archive's 0.975 on BasicMotions, and the
project's numba kernel gives tslearn's distances (full window and Sakoe-Chiba band)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sensorops.model_input import ModelInput, ModelInputError
from sensorops.timeseries.series import long_to_series
from sensorops.timeseries.sources import BASIC_MOTIONS_CHANNELS, load_basic_motions
from sensorops.training.evaluation import (
    EvaluationConfig,
    dtw_cdist,
    textbook_1nn_dtw,
    textbook_data,
)


def _mi_for(frame: pd.DataFrame) -> ModelInput:
    """A model input whose test split lists the frame's test series (X is not used here)."""
    series = long_to_series(frame, list(BASIC_MOTIONS_CHANNELS))
    classes = tuple(sorted(set(series.labels.tolist())))
    codes = {c: i for i, c in enumerate(classes)}
    arrays = {}
    for split in ("train", "val", "test"):
        mask = series.splits == split
        n = int(mask.sum())
        arrays[split] = (
            np.zeros((n, 4, len(BASIC_MOTIONS_CHANNELS)), dtype=np.float32),
            np.array([codes[label] for label in series.labels[mask]], dtype=np.int64),
            series.ids[mask],
        )
    return ModelInput(
        X={s: a[0] for s, a in arrays.items()},
        y={s: a[1] for s, a in arrays.items()},
        series_ids={s: a[2] for s, a in arrays.items()},
        classes=classes,
        channels=tuple(BASIC_MOTIONS_CHANNELS),
    )


@pytest.fixture(scope="module")
def basic_motions() -> pd.DataFrame:
    frame = load_basic_motions()
    # our split step carves validation out of the archive's train split: 8 of the 40 series
    ids = sorted(frame.loc[frame["split"] == "train", "series_id"].unique())[::5]
    frame.loc[frame["series_id"].isin(ids), "split"] = "val"
    return frame


def test_textbook_baseline_reproduces_the_archive_figure_on_basicmotions(
    basic_motions: pd.DataFrame,
) -> None:
    mi = _mi_for(basic_motions)
    cfg = EvaluationConfig()
    data = textbook_data(basic_motions, mi, cfg)
    assert len(data.references) == 40  # train AND validation series, as the archive fits it
    assert len(data.queries) == 40
    pred, facts = textbook_1nn_dtw(data, None, cfg, engine="tslearn")
    accuracy = float((pred == data.y_queries).mean())
    assert accuracy == pytest.approx(0.975)  # UEA archive, DTW_D: 39 of 40 right
    assert facts["sakoe_chiba_radius"] is None and facts["n_reference_series"] == 40
    assert "tslearn" in facts["engine"]
    # the project's kernel reaches the same predictions
    fast, facts_fast = textbook_1nn_dtw(data, None, cfg, engine="numba")
    np.testing.assert_array_equal(fast, pred)
    assert "numba" in facts_fast["engine"]


def test_without_the_validation_series_the_baseline_is_weaker_data(
    basic_motions: pd.DataFrame,
) -> None:
    """Capped references are a stated, stratified sample (the budget path)."""
    mi = _mi_for(basic_motions)
    cfg = EvaluationConfig(baseline_max_references=20, seed=3)
    data = textbook_data(basic_motions, mi, cfg)
    assert len(data.references) == 20
    assert np.bincount(data.y_references).tolist() == [5, 5, 5, 5]
    assert "stratified" in data.sampling and "20 of 40" in data.sampling


@pytest.mark.parametrize("band", [None, 0.1, 0.3])
def test_numba_kernel_equals_tslearn_cdist_dtw_on_variable_lengths(band: float | None) -> None:
    from tslearn.metrics import cdist_dtw
    from tslearn.utils import to_time_series_dataset

    rng = np.random.default_rng(0)
    a = [rng.standard_normal((int(n), 2)) for n in rng.integers(15, 40, size=5)]
    b = [rng.standard_normal((int(n), 2)) for n in rng.integers(15, 40, size=6)]
    ours = dtw_cdist(a, b, band)
    params = {}
    if band is not None:
        longest = max(max(len(v) for v in a), max(len(v) for v in b))
        params = {
            "global_constraint": "sakoe_chiba",
            "sakoe_chiba_radius": int(np.ceil(band * longest)),
        }
    ref = cdist_dtw(to_time_series_dataset(a), to_time_series_dataset(b), **params)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_missing_test_series_is_an_error_naming_it(basic_motions: pd.DataFrame) -> None:
    mi = _mi_for(basic_motions)
    frame = basic_motions[basic_motions["series_id"] != mi.series_ids["test"][0]]
    with pytest.raises(ModelInputError, match=str(mi.series_ids["test"][0])):
        textbook_data(frame, mi, EvaluationConfig())
