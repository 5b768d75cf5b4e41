"""``models doctor`` and ``models list`` on registries made inconsistent by hand (or by older
releases): several stage holders, a tag without its alias (issue case 3 as it was left), an alias
on an archived version, a version whose artifact is gone."""

from __future__ import annotations

import json

import pytest

from sensorops.cli import main
from sensorops.registry import promote, read_history
from sensorops.registry.doctor import diagnose, doctor
from sensorops.registry.intent import set_legacy
from sensorops.registry.transitions import production_lineage, read_state
from tests.registry.invariants import assert_invariants
from tests.registry.registry_helpers import FAULT_LOCK, clone_versions


@pytest.fixture
def config():
    from sensorops.registry import PromotionConfig

    return PromotionConfig(lock=FAULT_LOCK)


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


def checks(reg, name) -> list[str]:
    return sorted(p.check for p in diagnose(reg, name)[1])


def test_several_staging_holders_are_flagged_by_list_and_fixed(
    reg, model_name, template, config, mlflow_server, capsys
):
    v1, v2, v3 = clone_versions(reg, model_name, template, 3)
    promote(reg, model_name, v3, "staging", config=config)
    for v in (v1, v2):  # what older releases left: every rerun staged its version
        reg.client.set_model_version_tag(model_name, v, "sensorops.stage", "staging")
        set_legacy(reg, model_name, v, "Staging")
    capsys.readouterr()  # drop MLflow's "View run" lines printed so far
    code = main(["models", "list", model_name, "--json", "--tracking-uri", mlflow_server])
    listed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert any("3 versions are in staging" in p and "doctor" in p for p in listed["problems"])

    code = main(["models", "doctor", model_name, "--tracking-uri", mlflow_server])
    out = capsys.readouterr().out
    assert code == 6 and "several_holders" in out and "--fix" in out

    report = doctor(reg, model_name, fix=True, config=config)
    assert report.remaining == []
    state = assert_invariants(reg, model_name)["state"]
    assert state.in_stage("staging") == [v3] and state.versions[v1].stage == "archived"


def test_production_tag_without_alias_is_archived_without_a_production_event(
    reg, model_name, template, config, mi
):
    """The wedged v7 of issue case 3: tagged production, legacy stage Staging, no @production."""
    v1, v2 = clone_versions(reg, model_name, template, 2)
    promote(reg, model_name, v1, "staging", config=config)
    promote(reg, model_name, v1, "production", config=config, mi=mi)
    promote(reg, model_name, v2, "staging", config=config, mi=mi)
    reg.client.set_model_version_tag(model_name, v2, "sensorops.stage", "production")
    reg.client.delete_registered_model_alias(model_name, "staging")
    found = {p.check: p for p in diagnose(reg, model_name)[1]}
    assert "2 versions are in production" in found["several_holders"].message
    assert found["several_holders"].fix == f"archive ['v{v2}']"

    report = doctor(reg, model_name, fix=True, config=config)
    assert report.remaining == []
    state = assert_invariants(reg, model_name)["state"]
    assert state.production == v1 and state.versions[v2].stage == "archived"
    events = read_history(reg, model_name)
    assert events[-1]["kind"] == "repair" and events[-1]["never_held_production"] == [v2]
    assert not any(e.get("from") == "production" and e.get("version") == v2 for e in events)
    assert production_lineage(events) == [v1]


def test_archiving_a_tag_only_production_version_records_where_it_really_was(
    reg, model_name, template, config
):
    (v1,) = clone_versions(reg, model_name, template, 1)
    promote(reg, model_name, v1, "staging", config=config)
    reg.client.set_model_version_tag(model_name, v1, "sensorops.stage", "production")
    reg.client.delete_registered_model_alias(model_name, "staging")
    assert "tag_without_alias" in checks(reg, model_name)  # `list`/`doctor` would say so
    result = promote(reg, model_name, v1, "archived", config=config)  # archived by hand
    event = read_history(reg, model_name)[-1]
    assert result.to_stage == "archived" and event["from"] == "staging"
    assert event["never_held_production"] is True


def test_alias_on_archived_version_is_moved_to_the_stage_holder(reg, model_name, template, config):
    v1, v2 = clone_versions(reg, model_name, template, 2)
    promote(reg, model_name, v1, "staging", config=config)
    promote(reg, model_name, v2, "staging", config=config)  # v1 archived
    reg.client.set_registered_model_alias(model_name, "staging", v1)  # a stray manual alias
    found = diagnose(reg, model_name)[1]
    assert [p.check for p in found] == ["alias_mismatch"]
    assert found[0].fix == f"point @staging at v{v2}"
    assert doctor(reg, model_name, fix=True, config=config).remaining == []
    state = assert_invariants(reg, model_name)["state"]
    assert state.aliases["staging"] == v2 and state.versions[v2].stage == "staging"


def test_version_whose_artifact_is_gone_is_flagged_and_archived(
    reg, model_name, mi, onnx_models, config, register
):
    (rv,) = register(model_name, "noisy")
    mv = reg.client.get_model_version(model_name, rv.version)
    reg.client.delete_logged_model(mv.source.removeprefix("models:/"))
    found = diagnose(reg, model_name)[1]
    assert [p.check for p in found] == ["artifact_missing"]
    assert f"v{rv.version}: model artifact" in found[0].message
    assert doctor(reg, model_name, fix=True, config=config).remaining == []
    assert read_state(reg, model_name).versions[rv.version].stage == "archived"
