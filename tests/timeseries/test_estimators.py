"""Estimators fix their settings in ``fit`` and check them in ``transform`` (sklearn habits)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from sensorops.timeseries import (
    AlignmentConfig,
    Band,
    ChannelCountError,
    DTWConfig,
    NotFittedError,
    OutlierConfig,
    OutlierFilter,
    SeriesAligner,
    SeriesSet,
)
from sensorops.timeseries.config import PointOutlierConfig, ReferenceConfig
from sensorops.timeseries.dtw import align_to_reference, row_bounds, tslearn_kwargs


def _series(n: int, channels: int, length: int = 40, seed: int = 0) -> SeriesSet:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, length)
    values = [
        np.column_stack([np.sin(t + rng.uniform(0, 1)) for _ in range(channels)])
        + 0.05 * rng.standard_normal((length, channels))
        for _ in range(n)
    ]
    names = tuple(f"c{k}" for k in range(channels))
    return SeriesSet(
        ids=np.array([f"s{i}" for i in range(n)]),
        labels=np.array(["a", "b"] * (n // 2)),
        splits=np.array(["train"] * n),
        values=values,
        channels=names,
    )


def test_aligner_fixes_the_band_in_fit() -> None:
    cfg = AlignmentConfig(reference=ReferenceConfig(method="medoid", length=30))
    aligner = SeriesAligner(cfg).fit(_series(6, 2))
    assert aligner.band_ == Band("sakoe_chiba", radius=3)  # 0.1 x 30 steps, fixed once
    assert aligner.n_channels_ == 2
    itakura = SeriesAligner(
        AlignmentConfig(
            reference=ReferenceConfig(method="medoid"),
            dtw=DTWConfig(window="itakura", itakura_max_slope=3.0),
        )
    ).fit(_series(6, 2))
    assert itakura.band_ == Band("itakura", max_slope=3.0)


def test_aligner_refuses_transform_before_fit_and_other_channel_counts() -> None:
    aligner = SeriesAligner(AlignmentConfig(reference=ReferenceConfig(method="medoid")))
    with pytest.raises(NotFittedError, match=r"SeriesAligner is not fitted yet; call"):
        aligner.transform(_series(2, 2))
    aligner.fit(_series(6, 2))
    with pytest.raises(ChannelCountError, match=r"fitted on 2 channel\(s\); transform got .* 3"):
        aligner.transform(_series(2, 3))
    assert aligner.transform(_series(2, 2)).X.shape == (2, 40, 2)


def test_outlier_filter_refuses_transform_before_fit_and_other_channel_counts() -> None:
    cfg = OutlierConfig(n_estimators=10, max_samples=8, points=PointOutlierConfig(enabled=False))
    filt = OutlierFilter(cfg)
    with pytest.raises(NotFittedError, match="OutlierFilter is not fitted yet"):
        filt.transform(_series(4, 2))
    with pytest.raises(NotFittedError):
        filt.score(_series(4, 2).values)
    train = _series(12, 2)
    filt.fit(train)  # the same SeriesSet type as transform
    assert np.allclose(filt.score(train), OutlierFilter(cfg).fit(train.values).score(train.values))
    with pytest.raises(ChannelCountError, match=r"OutlierFilter was fitted on 2 channel\(s\)"):
        filt.transform(_series(4, 3))
    with pytest.raises(ChannelCountError, match="series 0"):
        filt.score(_series(4, 1).values)


def test_a_band_and_its_config_give_the_same_kernel_result() -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((5, 50, 2))
    ref = rng.standard_normal((40, 2))
    config = DTWConfig(radius_fraction=0.2)
    band = config.band(40)
    assert band == Band("sakoe_chiba", radius=8)
    for a, b in zip(
        align_to_reference(data, None, ref, config),
        align_to_reference(data, None, ref, band),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert tslearn_kwargs(band, 40) == tslearn_kwargs(config, 40) == band.tslearn_kwargs()
    lo, hi = row_bounds(50, 40, band)
    assert lo.shape == hi.shape == (50,)
    with pytest.raises(ValueError, match=r"band.window must be one of"):
        Band("sakoe-chiba")  # type: ignore[arg-type]


def test_the_kernel_module_does_not_import_the_config() -> None:
    import sensorops.timeseries.dtw as dtw

    tree = ast.parse(Path(dtw.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "sensorops.timeseries.config" not in imported, imported
