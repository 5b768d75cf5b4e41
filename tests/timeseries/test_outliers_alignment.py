"""Outlier handling (pyod IForest) and DTW alignment on small synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sensorops.timeseries.alignment import GLOBAL_REFERENCE, SeriesAligner
from sensorops.timeseries.config import (
    AlignmentConfig,
    ContractConfig,
    DTWConfig,
    OutlierConfig,
    PointOutlierConfig,
    ReferenceConfig,
    SplitConfig,
)
from sensorops.timeseries.contract import check_contract
from sensorops.timeseries.normalize import ChannelStandardizer
from sensorops.timeseries.outliers import OutlierFilter, interpolate_nans, outlier_counts
from sensorops.timeseries.prepare import align, clean, normalize
from sensorops.timeseries.series import SeriesSet, long_to_series
from sensorops.timeseries.split import assign_splits

FAST = OutlierConfig(
    n_estimators=50,
    contamination=0.1,
    points=PointOutlierConfig(contamination=0.02, max_fit_points=3000),
)


@pytest.fixture(scope="module")
def split_series(small_synthetic) -> SeriesSet:
    frame = check_contract(small_synthetic.frame, ContractConfig(), "synthetic")
    return long_to_series(assign_splits(frame, SplitConfig(seed=0)))


def test_interpolate_nans() -> None:
    x = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, 3.0], [4.0, 5.0]])
    filled, n = interpolate_nans(x)
    np.testing.assert_array_equal(filled, [[2.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 5.0]])
    assert n == 3 and np.isnan(x).sum() == 3


def test_spikes_repaired_and_anomalous_series_found(
    small_synthetic, split_series: SeriesSet
) -> None:
    filt = OutlierFilter(FAST).fit(split_series.split("train").values)
    result = filt.transform(split_series)
    report = result.report.set_index("series_id")
    assert all(not np.isnan(v).any() for v in result.series.values)
    # spikes: the largest deviation from a smooth signal shrinks a lot after repair
    raw = {
        sid: interpolate_nans(v)[0]
        for sid, v in zip(split_series.ids, split_series.values, strict=True)
    }
    rep = dict(zip(result.series.ids, result.series.values, strict=True))
    spiky = [sid for sid, n in small_synthetic.n_spikes.items() if n > 0 and sid in rep]
    repaired = report.loc[spiky, "points_repaired"]
    assert (repaired > 0).mean() > 0.8
    jump = lambda x: np.abs(np.diff(x, axis=0)).max()  # noqa: E731
    assert np.median([jump(rep[s]) / jump(raw[s]) for s in spiky]) < 0.6
    # whole anomalous series: most are flagged
    anomalous = list(small_synthetic.anomalous)
    assert report.loc[anomalous, "is_outlier"].mean() >= 0.75
    # train outliers dropped, val/test outliers only flagged
    assert set(report.loc[report.is_outlier & (report.split == "train"), "action"]) == {"dropped"}
    kept_eval = report[(report.split != "train")]
    assert (kept_eval["action"] != "dropped").all()
    assert set(kept_eval.index) <= set(result.series.ids)
    counts = outlier_counts(result.report)
    assert sum(c["dropped"] for c in counts["train"].values()) == int(
        (report.action == "dropped").sum()
    )


def test_repair_is_the_repair_transform_runs(split_series: SeriesSet) -> None:
    filt = OutlierFilter(FAST).fit(split_series.split("train").values)
    test = split_series.split("test")
    lengths = [len(v) for v in test.values]
    block = np.full((len(test.values), max(lengths), len(test.channels)), np.nan)
    points, nans = filt.repair(test.values, block)
    result = filt.transform(split_series)
    report = result.report.set_index("series_id").loc[list(test.ids)]
    np.testing.assert_array_equal(points, report["points_repaired"].to_numpy())
    np.testing.assert_array_equal(nans, report["nans_filled"].to_numpy())
    by_id = dict(zip(result.series.ids, result.series.values, strict=True))
    for i, sid in enumerate(test.ids):
        np.testing.assert_allclose(block[i, : lengths[i]], by_id[sid])
    with pytest.raises(ValueError, match=r"block has shape .* expected"):
        filt.repair(test.values, block[:, :, :1])


def test_flag_mode_keeps_train_outliers(split_series: SeriesSet) -> None:
    cfg = FAST.model_copy(update={"train_action": "flag"})
    result = OutlierFilter(cfg).fit(split_series.split("train").values).transform(split_series)
    assert len(result.series) == len(split_series)
    assert (result.report["action"] == "flagged").sum() == result.report["is_outlier"].sum() > 0


def test_fitted_state_ignores_val_and_test_data(small_synthetic) -> None:
    """Issue 3: outlier threshold, alignment references and normalization statistics are fitted on
    train only, so changing the val/test data (present in every fit call) changes none of them."""
    frame = assign_splits(
        check_contract(small_synthetic.frame, ContractConfig(), "synthetic"), SplitConfig(seed=0)
    )
    channels = [c for c in frame.columns if c not in ("series_id", "t", "label", "split")]
    rng = np.random.default_rng(7)
    held_out = frame["split"] != "train"
    changed = frame.copy()
    changed.loc[held_out, channels] = (
        frame.loc[held_out, channels].to_numpy() * 5.0
        + 1.0
        + rng.standard_normal((int(held_out.sum()), len(channels)))
    )
    assert held_out.sum() > 0 and set(frame.loc[held_out, "split"]) == {"val", "test"}
    assert not frame.equals(changed)

    align_cfg = AlignmentConfig(
        reference=ReferenceConfig(method="medoid", max_series=10),
        dtw=DTWConfig(radius_fraction=0.2),
    )
    fitted = []
    for table in (frame, changed):
        cleaned, filt = clean(table, FAST)
        mi, aligner, _ = align(cleaned.series, align_cfg)
        normalized, scaler = normalize(mi)
        fitted.append((cleaned, filt, aligner, scaler, mi, normalized))
    (c1, f1, a1, s1, m1, n1), (c2, f2, a2, s2, m2, n2) = fitted

    # the held-out data really differs downstream (so the checks below can fail)
    assert not np.array_equal(m1.X["test"], m2.X["test"])
    np.testing.assert_array_equal(m1.X["train"], m2.X["train"])
    # outlier filter: series threshold, train scores, per-point scales and thresholds
    assert f1 is not None and f2 is not None
    assert f1.threshold_ == f2.threshold_
    np.testing.assert_array_equal(f1.train_scores_, f2.train_scores_)
    np.testing.assert_array_equal(f1.point_scale_, f2.point_scale_)
    np.testing.assert_array_equal(f1.point_thresholds_, f2.point_thresholds_)
    train_report = lambda c: c.report[c.report.split == "train"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(train_report(c1), train_report(c2))
    # alignment references
    assert a1 is not None and a2 is not None
    assert a1.reference_names_ == a2.reference_names_ and a1.ref_length_ == a2.ref_length_
    np.testing.assert_array_equal(a1.references_, a2.references_)
    # normalization statistics
    np.testing.assert_array_equal(s1.mean_, s2.mean_)
    np.testing.assert_array_equal(s1.std_, s2.std_)
    assert n1.metadata["normalization"] == n2.metadata["normalization"]
    # ...while fitting the same objects on the changed held-out data gives other values
    wrong = ChannelStandardizer().fit(m2.X["test"])
    assert not np.allclose(wrong.mean_, s1.mean_)


def _shifted_pair(rng: np.random.Generator, shift: int, length: int = 60) -> np.ndarray:
    t = np.arange(length + 20)
    base = np.exp(-0.5 * ((t - 40) / 3.0) ** 2)
    x = np.column_stack([base, -base])[shift : shift + length]
    return x + 0.01 * rng.standard_normal(x.shape)


def test_alignment_undoes_shifts_without_labels() -> None:
    rng = np.random.default_rng(0)
    shifts = [0, 3, 6, 9, 12, 4, 8]
    values = [_shifted_pair(rng, s) for s in shifts]
    flat = [np.zeros((60, 2)) + 0.01 * rng.standard_normal((60, 2)) for _ in shifts]
    series = SeriesSet(
        ids=np.array([f"b{i}" for i in range(7)] + [f"f{i}" for i in range(7)]),
        labels=np.array(["bump"] * 7 + ["flat"] * 7),
        splits=np.array(["train"] * 5 + ["test"] * 2 + ["train"] * 5 + ["test"] * 2),
        values=values + flat,
        channels=("a", "b"),
    )
    cfg = AlignmentConfig(
        reference=ReferenceConfig(method="medoid"), dtw=DTWConfig(radius_fraction=0.25)
    )
    aligner = SeriesAligner(cfg).fit(series.split("train"))
    assert aligner.reference_names_ == ["bump", "flat"]
    unlabeled = series.split("test")
    unlabeled = SeriesSet(
        unlabeled.ids, np.array(["?"] * 4), unlabeled.splits, unlabeled.values, ("a", "b")
    )
    res = aligner.transform(unlabeled)
    assert res.reference.tolist() == ["bump", "bump", "flat", "flat"]  # chosen by least cost
    peaks = res.X[:2, :, 0].argmax(axis=1)
    assert np.ptp(peaks) <= 1  # shifted bumps land on the same reference step
    raw_peaks = [v[:, 0].argmax() for v in unlabeled.values[:2]]
    assert np.ptp(raw_peaks) >= 4
    assert np.all(res.costs <= res.all_costs.min(axis=1))


@pytest.mark.parametrize("method", ["medoid", "dba", "dba_tslearn"])
def test_references_depend_on_train_only(split_series: SeriesSet, method: str) -> None:
    cfg = AlignmentConfig(
        reference=ReferenceConfig(method=method, scope="global", max_series=10, dba_max_iter=3)
    )
    filled = split_series.with_values([interpolate_nans(v)[0] for v in split_series.values])
    a = SeriesAligner(cfg).fit(filled.split("train"))
    assert a.reference_names_ == [GLOBAL_REFERENCE]
    assert a.references_.shape == (1, a.ref_length_, 3)
    changed = filled.with_values(
        [
            v if s == "train" else v * 5.0 + 1.0
            for v, s in zip(filled.values, filled.splits, strict=True)
        ]
    )
    b = SeriesAligner(cfg).fit(changed.split("train"))
    np.testing.assert_array_equal(a.references_, b.references_)
    res = a.transform(filled)
    assert res.X.shape == (len(filled), a.ref_length_, 3) and np.isfinite(res.X).all()


def test_standardizer_uses_train_stats() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, size=(50, 20, 2))
    sc = ChannelStandardizer().fit(train)
    out = sc.transform(train)
    np.testing.assert_allclose(out.reshape(-1, 2).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(-1, 2).std(0), 1, atol=1e-5)
    assert sc.transform(np.full((1, 3, 2), 5.0)).dtype == np.float32
