"""Configuration errors, statistics frames, and the suites as reviewable JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from sensorops.quality import DataQualityConfigError, load_config, validate_table
from sensorops.quality.frames import DataQualityInputError, infer_channels, series_stats_frame
from sensorops.quality.suites import RULES, build_suite_specs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BASE_PARAMS = PROJECT_ROOT / "conf" / "base" / "parameters_data_quality.yml"
REPO_GX = PROJECT_ROOT / "conf" / "base" / "gx"


def base_params() -> dict[str, Any]:
    return yaml.safe_load(BASE_PARAMS.read_text())["data_quality"]


def test_base_parameters_build_the_default_config() -> None:
    config = load_config(base_params())
    assert config == load_config({})
    assert [config.tier(n).action for n in (1, 2, 3)] == ["fail", "fail", "fail"]
    assert config.stage("raw").value_range("acc_x") == (-1000.0, 1000.0)
    assert config.stage("model_input").value_range("acc_x") == (-50.0, 50.0)


def test_unknown_key_is_named_with_valid_keys() -> None:
    with pytest.raises(DataQualityConfigError) as info:
        load_config({"basic_statistics": {"max_missing_rat": 0.1}})
    message = str(info.value)
    assert "data_quality.basic_statistics.max_missing_rat is not a known key" in message
    assert "max_missing_rate" in message


def test_bad_action_lists_the_options() -> None:
    with pytest.raises(
        DataQualityConfigError,
        match=r"data_quality.separability.action must be one of \['fail', 'warn'\]; got 'stop'",
    ):
        load_config({"separability": {"action": "stop"}})


def test_unknown_stage_and_inverted_range_are_rejected() -> None:
    with pytest.raises(DataQualityConfigError, match="stages keys must be among"):
        load_config({"stages": {"features": {}}})
    with pytest.raises(
        DataQualityConfigError, match=r"value_ranges\['acc_\*'\] must be \[min, max\]"
    ):
        load_config({"stages": {"raw": {"value_ranges": {"acc_*": [5, -5]}}}})


def test_value_ranges_match_names_then_globs() -> None:
    stage = load_config(
        {"stages": {"raw": {"value_ranges": {"acc_*": [-160, 160], "acc_z": [-20, 20]}}}}
    ).stage("raw")
    assert stage.value_range("acc_z") == (-20, 20)
    assert stage.value_range("acc_x") == (-160, 160)
    assert stage.value_range("gyr_x") == (-1000.0, 1000.0)


def test_channels_inferred_or_checked() -> None:
    frame = pd.DataFrame(
        {"series_id": ["a"], "t": [0], "x": [1.0], "y": [2], "label": ["k"], "split": ["train"]}
    )
    assert infer_channels(frame) == ("x", "y")
    with pytest.raises(DataQualityInputError, match=r"configured channels \['z'\] are not columns"):
        infer_channels(frame, ["z"])


def test_missing_key_column_is_named(params: dict[str, Any]) -> None:
    frame = pd.DataFrame({"series_id": ["a"], "x": [1.0], "label": ["k"]})
    with pytest.raises(DataQualityInputError, match=r"lacks key column\(s\) \['t'\]"):
        validate_table(frame, params)


def test_series_stats_follow_each_series_in_row_order() -> None:
    frame = pd.DataFrame(
        {
            "series_id": ["a", "b", "a", "b", "a", "b"],
            "t": [0, 10, 1, 20, 3, 15],
            "label": ["x"] * 6,
            "split": ["train", "train", "train", "test", "train", "train"],
        }
    )
    stats = series_stats_frame(frame).set_index("key")
    assert stats.loc["a", "n_steps"] == 3 and stats.loc["b", "n_steps"] == 3
    assert bool(stats.loc["a", "t_strictly_increasing"]) is True
    assert bool(stats.loc["b", "t_strictly_increasing"]) is False
    # a: intervals 1 and 2, median 1.5 -> |2 - 1.5| / 1.5
    assert stats.loc["a", "interval_deviation"] == pytest.approx(1 / 3)
    assert stats.loc["b", "interval_deviation"] == pytest.approx(0.0)  # sorted: 10, 15, 20
    assert stats.loc["a", "n_splits"] == 1 and stats.loc["b", "n_splits"] == 2


def test_series_stats_accept_timestamps() -> None:
    start = pd.Timestamp("2026-01-01")
    t = [start + pd.Timedelta(seconds=s) for s in (0, 10, 20, 0, 10, 25)]
    frame = pd.DataFrame({"series_id": ["a"] * 3 + ["b"] * 3, "t": t, "label": ["x"] * 6})
    frame.loc[5, "t"] = pd.NaT
    stats = series_stats_frame(frame).set_index("key")
    assert stats.loc["a", "interval_deviation"] == pytest.approx(0.0)
    assert stats.loc["b", "interval_deviation"] == pytest.approx(0.0)  # NaT left out (key rule)
    assert bool(stats.loc["b", "t_strictly_increasing"]) is True
    assert stats.loc["b", "n_steps"] == 3


def test_every_rule_has_an_expectation(params: dict[str, Any]) -> None:
    config = load_config({**params, "basic_statistics": {"min_series_per_class": 2}})
    specs = build_suite_specs("raw", config, ["c0", "c1"], ["a", "b"], has_split=True)
    rules = {(e.meta["tier"], e.meta["rule"]) for s in specs for e in s.expectations}
    assert rules == {(tier, rule) for tier, names in RULES.items() for rule in names}
    assert {s.name for s in specs} >= {
        "raw_tier1_data",
        "raw_tier2_series_stats",
        "raw_tier3_separability",
    }


def test_regenerating_suites_leaves_json_unchanged(table: pd.DataFrame, tmp_path: Path) -> None:
    params = {"gx_project_dir": str(tmp_path / "proj"), "data_docs_dir": str(tmp_path / "docs")}
    validate_table(table, params)
    gx_dir = tmp_path / "proj" / "gx"
    before = {
        p.relative_to(gx_dir): p.read_text()
        for p in gx_dir.rglob("*.json")
        if "uncommitted" not in p.parts
    }
    assert len([p for p in before if p.parts[0] == "expectations"]) == 8
    # a fresh process would start from the files alone: drop the in-process registration cache
    from sensorops.quality import context

    context._REGISTERED.clear()
    validate_table(table, params)
    after = {
        p.relative_to(gx_dir): p.read_text()
        for p in gx_dir.rglob("*.json")
        if "uncommitted" not in p.parts
    }
    assert after == before
    assert "uncommitted/" in (gx_dir / ".gitignore").read_text()
    assert "data_docs_sites" in (gx_dir / "great_expectations.yml").read_text()
    assert str(tmp_path / "docs") not in (gx_dir / "great_expectations.yml").read_text()


def _strip_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("id", "rendered_content")} for e in items]


def test_runs_never_write_into_conf() -> None:
    """The base parameters and the default put the GE file context under data/, not conf/."""
    for config in (load_config(base_params()), load_config({})):
        assert Path(config.gx_project_dir).parts[0] == "data", config.gx_project_dir


def test_repository_suites_match_the_base_parameters(tmp_path: Path) -> None:
    """conf/base/gx holds the suites the base parameters generate for BasicMotions.

    After changing parameters_data_quality.yml, regenerate them with
    ``kedro run --pipelines=ingestion,data_quality`` (base env), copy data/08_reporting/gx
    (without uncommitted/) to conf/base/gx and commit it.
    """
    from sensorops.timeseries.sources import BASIC_MOTIONS_CHANNELS

    config = load_config(base_params())
    labels = ["badminton", "running", "standing", "walking"]
    for stage in ("raw", "model_input"):
        for spec in build_suite_specs(
            stage, config, BASIC_MOTIONS_CHANNELS, labels, has_split=True
        ):
            path = REPO_GX / "expectations" / f"{spec.name}.json"
            assert path.is_file(), f"{path} is missing; regenerate conf/base/gx"
            stored = json.loads(path.read_text())["expectations"]
            want = [e.configuration.to_json_dict() for e in spec.expectations]
            assert _strip_ids(stored) == json.loads(json.dumps(_strip_ids(want))), (
                f"{path} is out of date with {BASE_PARAMS}; regenerate conf/base/gx"
            )


def test_repository_context_opens_and_validates(table: pd.DataFrame, tmp_path: Path) -> None:
    copy = tmp_path / "conf_base"
    shutil.copytree(REPO_GX, copy / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    frame = table.rename(columns={"c0": "acc_x", "c1": "acc_y", "c2": "acc_z", "c3": "gyr_x"})
    frame["gyr_y"] = np.sin(np.arange(len(frame)) / 7.0)
    frame["gyr_z"] = np.cos(np.arange(len(frame)) / 11.0)
    result = validate_table(
        frame, {"gx_project_dir": str(copy), "data_docs_dir": str(tmp_path / "docs")}
    )
    assert [t.tier for t in result.tiers] == [1, 2, 3]
    assert (tmp_path / "docs" / "index.html").is_file()
