"""The three-tier gate on real Great Expectations: one passing fixture, one failing fixture per rule."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sensorops.quality import (
    DataQualityError,
    StageResult,
    enforce,
    run_gate_on_table,
    validate_model_input,
    validate_table,
)
from sensorops.quality import report as dq_report
from tests.quality.conftest import CHANNELS, long_table_to_model_input


def failures(result: StageResult) -> set[tuple[int, str, str | None]]:
    """``(tier, rule, column)`` of every failed expectation."""
    return {(o.tier, o.rule, o.column) for t in result.tiers for o in t.failures}


def failed_tiers(result: StageResult) -> set[int]:
    return {t.tier for t in result.tiers if not t.success}


@dataclass(frozen=True)
class Passing:
    raw: StageResult
    model_input: StageResult
    docs: Path


@pytest.fixture(scope="module")
def passing(
    good_table: pd.DataFrame, gx_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Passing:
    """Both stages validated once on the passing data (shared by the read-only tests below)."""
    docs = tmp_path_factory.mktemp("passing") / "data_docs"
    params = {"gx_project_dir": str(gx_project), "data_docs_dir": str(docs)}
    raw = validate_table(good_table, params)
    mi = validate_model_input(long_table_to_model_input(good_table), params)
    return Passing(raw, mi, docs)


def test_good_table_passes_all_tiers_and_builds_data_docs(passing: Passing) -> None:
    result = passing.raw
    assert failures(result) == set()
    assert [t.tier for t in result.tiers] == [1, 2, 3]
    assert all(t.evaluated > 0 for t in result.tiers)
    assert result.passed and not result.warnings
    assert enforce(result) is result
    index = passing.docs / "index.html"
    assert index.is_file() and str(index.resolve()) == result.data_docs_index
    html = index.read_text()
    assert "raw_tier1_data" in html and "raw_tier3_separability" in html
    stats = result.tier(1).statistics
    assert stats["missing_rate.c0"] == 0.0
    assert stats["max_abs_correlation"] < 0.5
    assert stats["class_share.test.pump"] == pytest.approx(1 / 3)
    assert result.tier(3).statistics["balanced_accuracy"] >= 0.9


def test_channel_with_40_percent_nan_fails_missing_rate(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    rows = np.random.default_rng(1).choice(len(table), size=int(0.4 * len(table)), replace=False)
    table.loc[rows, "c2"] = np.nan
    result = validate_table(table, params)
    assert (1, "missing_rate", "c2") in failures(result)
    (outcome,) = [o for o in result.tier(1).failures if o.rule == "missing_rate"]
    assert outcome.observed["unexpected_percent"] == pytest.approx(40.0, abs=0.1)
    assert result.tier(1).statistics["missing_rate.c2"] == pytest.approx(0.4, abs=0.001)


def test_missing_class_in_test_fails_class_present(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    table = table[~((table["split"] == "test") & (table["label"] == "idle"))]
    result = validate_table(table, params)
    assert (1, "class_present", "label") in failures(result)
    (outcome,) = [o for o in result.tier(1).failures if o.rule == "class_present"]
    assert outcome.observed == [{"count": 0, "key": "test/idle"}]


def test_two_identical_channels_fail_correlation(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    table["c3"] = table["c1"]
    result = validate_table(table, params)
    got = {o.column for o in result.tier(1).failures if o.rule == "channel_correlation"}
    assert got == {"c1", "c3"}
    assert result.tier(1).statistics["max_abs_correlation"] == pytest.approx(1.0)
    corr = result.correlation.set_index("key")
    assert corr.loc["c1", "c3"] == pytest.approx(1.0)


def test_implausible_value_fails_value_range(table: pd.DataFrame, params: dict[str, Any]) -> None:
    table.loc[5, "c0"] = 5000.0
    result = validate_table(table, params)
    assert failures(result) == {(1, "value_range", "c0")}


def test_stuck_channel_fails_channel_variation(table: pd.DataFrame, params: dict[str, Any]) -> None:
    table["c1"] = 0.25
    result = validate_table(table, params)
    assert (1, "channel_variation", "c1") in failures(result)


def test_null_label_fails_key_rule(table: pd.DataFrame, params: dict[str, Any]) -> None:
    table.loc[7, "label"] = None
    result = validate_table(table, params)
    assert (2, "key_not_null", "label") in failures(result)


def test_duplicate_time_step_fails_uniqueness(table: pd.DataFrame, params: dict[str, Any]) -> None:
    table.loc[3, "t"] = table.loc[2, "t"]
    result = validate_table(table, params)
    assert (2, "series_time_unique", "series_id,t") in failures(result)
    assert (2, "t_strictly_increasing", "t") in failures(result)


def test_non_monotonic_t_fails_ordering_only(table: pd.DataFrame, params: dict[str, Any]) -> None:
    first = table.index[table["series_id"] == "s0005"]
    t = table.loc[first, "t"].to_numpy().copy()
    t[[4, 5]] = t[[5, 4]]
    table.loc[first, "t"] = t
    result = validate_table(table, params)
    assert failures(result) == {(2, "t_strictly_increasing", "t")}
    (outcome,) = result.tier(2).failures
    assert outcome.observed == [{"t_strictly_increasing": False, "key": "s0005"}]


def test_label_outside_configured_set_fails(table: pd.DataFrame, params: dict[str, Any]) -> None:
    table.loc[table["series_id"] == "s0040", "label"] = "banana"
    result = validate_table(table, {**params, "labels": ["fault", "idle", "pump"]})
    assert (2, "label_in_set", "label") in failures(result)
    (outcome,) = [o for o in result.tier(2).failures if o.rule == "label_in_set"]
    assert "banana" in outcome.observed["partial_unexpected_list"]


def test_configured_label_never_seen_fails_completeness(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    result = validate_table(table, {**params, "labels": ["fault", "idle", "pump", "leak"]})
    assert (2, "label_set_complete", "label") in failures(result)
    assert (1, "class_present", "label") in failures(result)


def test_series_in_two_splits_fails_disjointness(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    rows = table.index[table["series_id"] == "s0001"][:5]
    table.loc[rows, "split"] = "test"
    result = validate_table(table, params)
    assert (2, "split_disjoint", "split") in failures(result)


def test_irregular_sampling_fails_interval_rule(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    rows = table.index[table["series_id"] == "s0002"]
    # one gap of 4 steps in a series sampled every step
    table.loc[rows[10:], "t"] = table.loc[rows[10:], "t"] + 3
    result = validate_table(table, params)
    assert failures(result) == {(2, "sampling_interval", "t")}
    (outcome,) = result.tier(2).failures
    assert outcome.observed == [{"interval_deviation": 3.0, "key": "s0002"}]


def test_series_sampled_at_different_rates_pass(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    rows = table.index[table["series_id"] == "s0002"]
    table.loc[rows, "t"] = 100 + table.loc[rows, "t"] * 5
    result = validate_table(table, params)
    assert failures(result) == set()


def test_short_series_fails_min_length(table: pd.DataFrame, params: dict[str, Any]) -> None:
    result = validate_table(table, {**params, "business_rules": {"min_series_length": 64}})
    assert failures(result) == {(2, "min_series_length", "t")}


def test_random_labels_fail_separability(table: pd.DataFrame, params: dict[str, Any]) -> None:
    per_series = table.groupby("series_id", sort=False)["label"].first()
    shuffled = dict(
        zip(
            per_series.index,
            np.random.default_rng(3).permutation(per_series.to_numpy()),
            strict=True,
        )
    )
    table["label"] = table["series_id"].map(shuffled)
    result = validate_table(
        table, {**params, "basic_statistics": {"max_class_share": 1.0, "min_class_share": 0.0}}
    )
    assert failed_tiers(result) == {3}
    assert {(o.rule, o.column) for o in result.tier(3).failures} >= {
        ("min_balanced_accuracy", "label")
    }
    assert result.tier(3).statistics["balanced_accuracy"] < 0.6


def test_fail_action_raises_with_every_failure_named(
    table: pd.DataFrame, params: dict[str, Any]
) -> None:
    table.loc[table.index[:300], "c2"] = np.nan
    table.loc[7, "label"] = None
    with pytest.raises(DataQualityError) as info:
        run_gate_on_table(table, params)
    message = str(info.value)
    assert "stage 'raw'" in message
    assert "rule 'missing_rate' column 'c2'" in message
    assert "rule 'key_not_null' column 'label'" in message
    assert '"unexpected_count": 300' in message
    assert "Data Docs:" in message
    assert {o.rule for o in info.value.failures} >= {"missing_rate", "key_not_null"}
    assert str(pickle.loads(pickle.dumps(info.value))) == message


def test_warn_action_continues_and_reports(table: pd.DataFrame, params: dict[str, Any]) -> None:
    table["c3"] = table["c0"]
    warn = {**params, "basic_statistics": {"action": "warn"}}
    result = run_gate_on_table(table, warn)
    assert [t.tier for t in result.warnings] == [1]
    assert result.passed
    tags = dq_report.tags([result])
    assert tags["data_quality.raw.tier1"] == "warn_failed"
    assert tags["data_quality.warnings"] == "raw.tier1"
    summary = dq_report.summary([result])
    assert summary["passed"] is True
    tier1 = summary["stages"]["raw"]["tiers"]["tier1"]
    assert tier1["success"] is False and tier1["action"] == "warn" and tier1["failed"] == 2
    json.dumps(summary)


def test_model_input_passes_and_flags_leaked_series(
    passing: Passing, good_table: pd.DataFrame, params: dict[str, Any]
) -> None:
    result = passing.model_input
    assert failures(result) == set()
    assert result.stage == "model_input" and result.channels == CHANNELS

    mi = long_table_to_model_input(good_table)

    leaked = mi.series_ids["test"].copy()
    leaked[0] = mi.series_ids["train"][0]
    bad = type(mi)(
        X=mi.X,
        y=mi.y,
        series_ids={**mi.series_ids, "test": leaked},
        classes=mi.classes,
        channels=mi.channels,
    )
    result = validate_model_input(bad, params)
    assert (2, "split_disjoint", "split") in failures(result)


def test_metrics_and_report_cover_every_tier(passing: Passing) -> None:
    raw, mi = passing.raw, passing.model_input
    metrics = dq_report.metrics([raw, mi])
    for stage in ("raw", "model_input"):
        for tier in (1, 2, 3):
            assert metrics[f"{stage}.tier{tier}.success"] == {"value": 1.0, "step": 0}
            assert metrics[f"{stage}.tier{tier}.evaluated"]["value"] > 0
    assert "raw.tier1.max_abs_correlation" in metrics
    assert "model_input.tier3.balanced_accuracy" in metrics
    report = dq_report.validation_report([raw, mi])
    assert set(report) == {"raw", "model_input"}
    assert report["raw"]["raw_tier1_data"]["success"] is True
    json.dumps(report)
    docs = Path(dq_report.data_docs_dir([raw, mi]))
    pages = {p.name for p in (docs / "validations").iterdir()}
    assert {"raw_tier1_data", "model_input_tier3_class_recall"} <= pages
    corr = dq_report.correlation_table([raw, mi])
    assert set(corr["stage"]) == {"raw", "model_input"}
