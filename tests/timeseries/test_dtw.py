"""Our numba DTW kernel against tslearn.metrics.dtw_path: identical paths and distances."""

from __future__ import annotations

import numpy as np
import pytest
from tslearn.metrics import dtw_path as tslearn_dtw_path

from sensorops.timeseries.config import DTWConfig
from sensorops.timeseries.dtw import align_to_reference, dtw_path, row_bounds, tslearn_kwargs

CONFIGS = [
    DTWConfig(window="none"),
    DTWConfig(window="sakoe_chiba", radius_fraction=0.1),
    DTWConfig(window="sakoe_chiba", radius=3),
    DTWConfig(window="itakura", itakura_max_slope=2.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.window}-{c.radius}")
def test_paths_identical_to_tslearn(config: DTWConfig) -> None:
    rng = np.random.default_rng(1)
    checked = 0
    for trial in range(25):
        l2 = 32
        l1 = 32 if trial % 3 == 0 else int(rng.integers(24, 44))
        s = rng.standard_normal((l1, 3)).cumsum(axis=0)
        ref = rng.standard_normal((l2, 3)).cumsum(axis=0)
        if trial % 4 == 0:  # integer values produce ties: the backtrack priority must match
            s, ref = np.round(s), np.round(ref)
        ours, dist = dtw_path(s, ref, config)
        theirs, tdist = tslearn_dtw_path(s, ref, **tslearn_kwargs(config, l2))
        assert ours == theirs
        assert dist == tdist  # bit-identical float64 accumulation
        checked += 1
    assert checked == 25


def test_batch_matches_single_and_averages_matched_points() -> None:
    rng = np.random.default_rng(2)
    config = DTWConfig(window="sakoe_chiba", radius_fraction=0.2)
    data = rng.standard_normal((12, 40, 2))
    lengths = rng.integers(25, 41, size=12)
    data[np.arange(40)[None, :] >= lengths[:, None]] = np.nan  # padding is never read
    ref = rng.standard_normal((30, 2))
    X, costs = align_to_reference(data, lengths, ref, config, out_dtype=np.float64)
    assert X.shape == (12, 30, 2)
    for n in range(12):
        path, dist = tslearn_dtw_path(data[n, : lengths[n]], ref, **tslearn_kwargs(config, 30))
        assert costs[n] == dist
        expected = np.zeros((30, 2))
        count = np.zeros(30)
        for i, j in path:
            expected[j] += data[n, i]
            count[j] += 1
        np.testing.assert_allclose(X[n], expected / count[:, None], rtol=1e-12)


def test_float32_input_gives_the_float64_paths() -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((6, 20, 3)).astype(np.float32)
    ref = rng.standard_normal((20, 3))
    X32, c32 = align_to_reference(data, None, ref, DTWConfig())
    X64, c64 = align_to_reference(data.astype(np.float64), None, ref, DTWConfig())
    np.testing.assert_array_equal(c32, c64)
    np.testing.assert_array_equal(X32, X64.astype(np.float32))


def test_identity_alignment_is_free() -> None:
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((25, 2))
    X, costs = align_to_reference(ref[None], None, ref, DTWConfig(window="none"))
    assert costs[0] == 0.0
    np.testing.assert_allclose(X[0], ref, rtol=1e-6)


def test_infeasible_itakura_names_the_constraint() -> None:
    with pytest.raises(ValueError, match="itakura"):
        row_bounds(10, 40, DTWConfig(window="itakura", itakura_max_slope=1.5))


def test_masks_equal_tslearn() -> None:
    from tslearn.metrics import itakura_mask as ts_itakura
    from tslearn.metrics import sakoe_chiba_mask as ts_sakoe

    from sensorops.timeseries.dtw import itakura_mask, sakoe_chiba_mask

    for sz1 in (5, 17, 32, 41):
        for sz2 in (5, 20, 32, 40):
            for radius in (0, 1, 4, 10):
                np.testing.assert_array_equal(
                    sakoe_chiba_mask(sz1, sz2, radius), ts_sakoe(sz1, sz2, radius)
                )
            for slope in (1.5, 2.0, 3.0):
                try:
                    expected = ts_itakura(sz1, sz2, slope)
                except RuntimeWarning:
                    with pytest.raises(ValueError, match="admits no warping path"):
                        itakura_mask(sz1, sz2, slope)
                    continue
                np.testing.assert_array_equal(itakura_mask(sz1, sz2, slope), expected)
