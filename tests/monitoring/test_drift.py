"""The drift tier and the decision on logs written through the serving side's PartitionedLog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensorops.monitoring import load_monitoring_config, monitor, read_window
from sensorops.monitoring.config import PerformanceConfig
from sensorops.monitoring.drift import adjust, psi
from sensorops.monitoring.performance import assess

CFG = load_monitoring_config({})
DRIFTED = "temperature"  # channel 1 of the test env's synthetic data


def _check(tmp_path: Path, write_log: Any, reference: Any, **kwargs: Any) -> Any:
    written = write_log(tmp_path, **kwargs)
    window = read_window(written["dir"])
    assert window.n == kwargs.get("n", 60)
    report, _ = monitor(window, reference, CFG)
    return report


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_traffic_is_ok_with_no_channel_flagged(
    tmp_path: Path, write_log: Any, mon_reference: Any, seed: int
) -> None:
    report = _check(tmp_path, write_log, mon_reference, mode="none", n=80, seed=seed)
    assert report.decision == "ok", report.reasons
    assert report.drifted_channels == []
    assert not [d["signal"] for d in report.drift if d["flagged"]]
    # every channel was tested (mean and std), plus the model-side signals
    signals = {d["signal"] for d in report.drift}
    for ch in mon_reference.channels:
        assert {f"mean:{ch}", f"std:{ch}"} <= signals
    assert {"alignment_cost", "confidence", "predicted"} <= signals


@pytest.mark.parametrize("mode", ["stuck", "gain", "covariate"])
def test_channel_drift_is_detected_and_named(
    tmp_path: Path, write_log: Any, mon_reference: Any, mode: str
) -> None:
    report = _check(tmp_path, write_log, mon_reference, mode=mode, n=60, seed=4)
    assert report.decision in ("warn", "retrain"), report.reasons
    assert report.drifted_channels == [DRIFTED], report.reasons
    assert any(DRIFTED in r for r in report.reasons)


def test_new_fault_class_is_detected_and_named(
    tmp_path: Path, write_log: Any, mon_reference: Any
) -> None:
    report = _check(tmp_path, write_log, mon_reference, mode="new_class", n=60, seed=5)
    assert report.decision == "retrain", report.reasons
    assert report.performance["unknown_labels"] == {"fault_new": 60}
    assert any("fault_new" in r for r in report.reasons)
    flagged = {d["signal"] for d in report.drift if d["flagged"]}
    assert "alignment_cost" in flagged  # the new fault fits no training template


def test_too_few_records_is_a_warning_not_ok(
    tmp_path: Path, write_log: Any, mon_reference: Any
) -> None:
    report = _check(tmp_path, write_log, mon_reference, mode="gain", n=8, seed=6)
    assert report.decision == "warn"
    assert report.drift == []
    assert any("drift not tested" in r for r in report.reasons)


def test_corrections_and_psi() -> None:
    p = np.array([0.001, 0.01, 0.02, 0.5])
    assert np.allclose(adjust(p, "bonferroni"), [0.004, 0.04, 0.08, 1.0])
    assert np.allclose(adjust(p, "bh"), [0.004, 0.02, 0.02 * 4 / 3, 0.5])
    rng = np.random.default_rng(0)
    ref = rng.normal(size=2000)
    assert psi(ref, rng.normal(size=2000)) < 0.05
    assert psi(ref, rng.normal(1.0, 1.0, size=2000)) > 0.5


def test_performance_test_is_meaningful_for_its_sample() -> None:
    cfg = PerformanceConfig()
    classes = ["a", "b"]
    truth = ["a"] * 50
    drop = assess(truth, ["a"] * 30 + ["b"] * 20, classes, 0.95, 40, cfg)
    assert drop.tested and drop.significant_drop and drop.p_value < 0.01
    assert drop.accuracy == pytest.approx(0.6) and drop.confusion == [[30, 20], [0, 0]]
    same = assess(truth, ["a"] * 47 + ["b"] * 3, classes, 0.95, 40, cfg)
    assert same.tested and not same.significant_drop
    few = assess(["a"] * 5, ["b"] * 5, classes, 0.95, 40, cfg)
    assert not few.tested and "min_labelled" in few.note
