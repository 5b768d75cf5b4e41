"""Unknown parameter keys are errors that name the key and suggest the valid one."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorops.config_validation import (
    UnknownParameterError,
    check_parameters,
    unknown_parameter_keys,
)

REFERENCE = {
    "training": {"model": {"name": "lstm_attention", "hidden": 64}, "epochs": 10, "ranges": {}},
    "ingestion": {"dtw": {"window": "sakoe_chiba", "radius": 10}, "source": {"path": None}},
}


def test_known_keys_pass() -> None:
    params = {
        "training": {"model": {"hidden": 32}, "epochs": 2},
        "ingestion": {"dtw": {"radius": 3}},
    }
    assert unknown_parameter_keys(params, REFERENCE) == []


def test_misspelled_nested_key_is_reported_with_valid_options() -> None:
    problems = unknown_parameter_keys({"training": {"model": {"hiden": 32}}}, REFERENCE)
    assert problems == [("training.model.hiden", ["hidden", "name"])]


def test_unknown_top_level_key() -> None:
    problems = unknown_parameter_keys({"trainig": {"epochs": 1}}, REFERENCE)
    assert [p[0] for p in problems] == ["trainig"]


def test_free_form_mappings_accept_any_key() -> None:
    params = {"training": {"ranges": {"acc_x": [-5, 5]}}, "ingestion": {"source": {"path": "x"}}}
    assert unknown_parameter_keys(params, REFERENCE) == []


def test_keys_under_a_null_default_are_unknown(tmp_path: Path) -> None:
    """A null in base is an unset value: ``tracking_uri.x=1`` used to pass and crash later."""
    params = {"ingestion": {"source": {"path": {"x": 1}}}}
    assert unknown_parameter_keys(params, REFERENCE) == [("ingestion.source.path.x", [])]
    (tmp_path / "parameters_training.yml").write_text(
        "training:\n  trainer:\n    mlflow:\n      tracking_uri: null\n"
    )
    with pytest.raises(UnknownParameterError) as info:
        check_parameters(
            {"training": {"trainer": {"mlflow": {"tracking_uri": {"x": 1}}}}}, tmp_path, "local"
        )
    assert (
        "training.trainer.mlflow.tracking_uri.x is not a known key: "
        "training.trainer.mlflow.tracking_uri takes a single value" in str(info.value)
    )


def test_check_parameters_message_names_key_file_and_suggestion(tmp_path: Path) -> None:
    (tmp_path / "parameters_training.yml").write_text("training:\n  epochs: 3\n  batch_size: 8\n")
    with pytest.raises(UnknownParameterError) as info:
        check_parameters({"training": {"batch_sise": 4}}, tmp_path, "test")
    text = str(info.value)
    assert "'training.batch_sise'" in text
    assert "did you mean 'batch_size'" in text
    assert "environment 'test'" in text
    assert str(tmp_path) in text


def test_project_base_parameters_load_and_are_disjoint(project_root: Path) -> None:
    from sensorops.config_validation import load_base_parameters

    files = sorted((project_root / "conf" / "base").glob("parameters*.yml"))
    merged = load_base_parameters(project_root / "conf" / "base")
    # one top key per file, named after its pipeline
    assert len(merged) == len(files)
    for path in files:
        assert path.stem.removeprefix("parameters_") in merged, (
            f"{path.name} must have the pipeline name as top key"
        )


def test_load_section_layers_base_env_and_overrides_and_names_a_bad_file(tmp_path: Path) -> None:
    from sensorops.config_validation import ConfigError, load_section

    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parameters_demo.yml").write_text("demo:\n  a: 1\n  b: {c: 2, d: 3}\n")
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "parameters_demo.yml").write_text("demo:\n  b: {c: 20}\n")
    merged = load_section(tmp_path, "demo", "prod", {"a": 10})
    assert merged == {"a": 10, "b": {"c": 20, "d": 3}}
    assert load_section(tmp_path, "demo") == {"a": 1, "b": {"c": 2, "d": 3}}  # no conf/local
    (tmp_path / "prod" / "parameters_demo.yml").write_text("other: {}\n")
    with pytest.raises(
        ConfigError, match=r"prod/parameters_demo\.yml must have a top-level 'demo'"
    ):
        load_section(tmp_path, "demo", "prod")
    (tmp_path / "prod" / "parameters_demo.yml").write_text("demo: [unclosed\n")
    with pytest.raises(ConfigError, match=r"prod/parameters_demo\.yml is not valid YAML"):
        load_section(tmp_path, "demo", "prod")
