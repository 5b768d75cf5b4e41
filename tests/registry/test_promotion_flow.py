"""Promotion, gates, rollback and audit trail against the real MLflow server."""

from __future__ import annotations

import pytest

from sensorops.registry import (
    GateRefused,
    NotFoundError,
    TransitionFailed,
    consistency_problems,
    production_lineage,
    promote,
    read_history,
    read_state,
    rollback,
)
from sensorops.registry.transitions import audit_record


def _snapshot(reg, name):
    state = read_state(reg, name)
    return (
        state.aliases,
        {v: (s.stage, s.legacy_stage, dict(s.tags)) for v, s in state.versions.items()},
        read_history(reg, name),
    )


def test_promote_through_every_stage_with_aliases_legacy_stages_and_audit(
    reg, mi, register, model_name, config
):
    v1, v2 = (rv.version for rv in register(model_name, "good", "good2"))
    r = promote(reg, model_name, v1, "staging", config=config, mi=mi, reason="first")
    assert (r.from_stage, r.to_stage, r.replaced) == ("candidate", "staging", [])
    state = read_state(reg, model_name)
    assert state.aliases == {"staging": v1}
    assert state.versions[v1].legacy_stage == "Staging"

    promote(reg, model_name, v1, "production", config=config, mi=mi)
    promote(reg, model_name, v2, "staging", config=config, mi=mi)
    r = promote(reg, model_name, v2, "production", config=config, mi=mi, reason="better")
    assert r.replaced == [v1]
    assert [g["gate"] for g in r.gates["results"]] == [
        "stage_order",
        "data_quality",
        "parity",
        "compression",
        "beats_baseline",
        "no_regression",
    ]
    regression = r.gates["results"][-1]["numbers"]
    assert regression["production_version"] == v1 and regression["candidate_version"] == v2

    state = read_state(reg, model_name)
    assert state.aliases == {"production": v2, "champion": v2}
    assert (state.versions[v1].stage, state.versions[v1].legacy_stage) == ("archived", "Archived")
    assert (state.versions[v2].stage, state.versions[v2].legacy_stage) == (
        "production",
        "Production",
    )
    assert consistency_problems(state) == []

    tags = state.versions[v2].tags
    assert audit_record(tags)["from"] == "staging" and audit_record(tags)["to"] == "production"
    assert audit_record(tags)["reason"] == "better" and "@" in audit_record(tags)["by"]
    assert reg.client.get_run(audit_record(tags)["evidence_run_id"]).data.metrics[
        f"promotion.v{v2}.production.candidate"
    ] == pytest.approx(1.0)
    assert audit_record(state.versions[v1].tags)["reason"] == f"replaced by v{v2}"

    events = read_history(reg, model_name)
    assert [(e["kind"], e["version"], e["to"]) for e in events] == [
        ("register", v1, "candidate"),
        ("register", v2, "candidate"),
        ("promote", v1, "staging"),
        ("promote", v1, "production"),
        ("promote", v2, "staging"),
        ("promote", v2, "production"),
    ]
    assert events[-1]["replaced"] == [v1] and events[-1]["gates"]["no_regression"] is True

    with pytest.raises(GateRefused, match="stage_order"):  # already archived
        promote(reg, model_name, v1, "archived", config=config)
    assert read_state(reg, model_name).versions[v1].stage == "archived"


@pytest.mark.parametrize(
    ("tags", "gate", "needle"),
    [
        (
            {"dq.passed": "false", "dq.raw.tier1": "fail:fail (evaluated=3, failed=2)"},
            "data_quality",
            "failing tiers ['dq.raw.tier1']",
        ),
        ({"parity.passed": "false", "parity.max_abs_diff": "0.2"}, "parity", "parity.max_abs_diff"),
        (
            {"compression.gate_passed": "false", "compression.delta_points": "-7.5"},
            "compression",
            "delta_points=-7.5",
        ),
    ],
)
def test_tag_gates_refuse_with_numbers_and_change_nothing(
    reg, mi, register, model_name, config, tags, gate, needle
):
    (rv,) = register(model_name, "good", tags=tags)
    before = _snapshot(reg, model_name)
    with pytest.raises(GateRefused) as info:
        promote(reg, model_name, rv.version, "staging", config=config, mi=mi)
    assert info.value.gate == gate and gate in str(info.value) and needle in str(info.value)
    assert info.value.exit_code == 1
    assert _snapshot(reg, model_name) == before


def test_regression_gate_compares_against_current_production_and_margin(
    reg, mi, register, model_name, config
):
    good, bad = (rv.version for rv in register(model_name, "good", "bad"))
    promote(reg, model_name, good, "staging", config=config, mi=mi)
    promote(reg, model_name, good, "production", config=config, mi=mi)
    before = _snapshot(reg, model_name)
    with pytest.raises(GateRefused) as info:
        promote(reg, model_name, bad, "staging", config=config, mi=mi)
    numbers = info.value.numbers
    assert info.value.gate == "no_regression"
    assert numbers["production"] == pytest.approx(1.0) and numbers["candidate"] < 0.2
    assert (
        numbers["drop_points"] > 80 and numbers["margin_points"] == 2.0 and numbers["n_test"] == 30
    )
    assert "accuracy" in str(info.value) and "exceeds the margin of 2.00 points" in str(info.value)
    assert _snapshot(reg, model_name) == before
    # a wide enough margin lets it through (the gate really compares numbers)
    wide = config.model_copy(
        update={"gates": config.gates.model_copy(update={"staging_margin_points": 100.0})}
    )
    assert promote(reg, model_name, bad, "staging", config=wide, mi=mi).to_stage == "staging"


def test_stage_order_gate_refuses_candidate_to_production(reg, mi, register, model_name, config):
    (rv,) = register(model_name, "good")
    before = _snapshot(reg, model_name)
    with pytest.raises(GateRefused) as info:
        promote(reg, model_name, rv.version, "production", config=config, mi=mi)
    assert info.value.gate == "stage_order" and "allowed from ['staging']" in str(info.value)
    assert _snapshot(reg, model_name) == before


def test_rollback_restores_previous_production_and_walks_back(
    reg, mi, register, model_name, config
):
    v1, v2, v3 = (rv.version for rv in register(model_name, "good", "good2", "good3"))
    for v in (v1, v2, v3):
        promote(reg, model_name, v, "staging", config=config, mi=mi)
        promote(reg, model_name, v, "production", config=config, mi=mi)
    assert production_lineage(read_history(reg, model_name)) == [v1, v2, v3]

    r = rollback(reg, model_name, config=config, reason="v3 misbehaves")
    assert (r.version, r.replaced, r.kind) == (v2, [v3], "rollback")
    state = read_state(reg, model_name)
    assert state.aliases == {"production": v2, "champion": v2}
    assert state.versions[v3].stage == "archived" and consistency_problems(state) == []
    assert audit_record(state.versions[v2].tags)["kind"] == "rollback"
    last = read_history(reg, model_name)[-1]
    assert (last["kind"], last["version"], last["rolled_back"], last["reason"]) == (
        "rollback",
        v2,
        v3,
        "v3 misbehaves",
    )

    assert rollback(reg, model_name, config=config).version == v1
    with pytest.raises(NotFoundError, match="no previous production version"):
        rollback(reg, model_name, config=config)
    assert read_state(reg, model_name).production == v1


def test_rollback_without_production_is_not_found(reg, register, model_name, config):
    register(model_name, "good")
    with pytest.raises(NotFoundError, match="no @production"):
        rollback(reg, model_name, config=config)


def test_unknown_model_and_version_are_not_found_and_change_nothing(
    reg, mi, register, model_name, config
):
    with pytest.raises(NotFoundError, match="registered model 'no-such-model'"):
        promote(reg, "no-such-model", "1", "staging", config=config, mi=mi)
    register(model_name, "good")
    before = _snapshot(reg, model_name)
    with pytest.raises(NotFoundError, match=f"version 42 of registered model '{model_name}'"):
        promote(reg, model_name, "42", "staging", config=config, mi=mi)
    assert _snapshot(reg, model_name) == before


def test_failed_write_mid_transition_is_undone(reg, mi, register, model_name, config, monkeypatch):
    v1, v2 = (rv.version for rv in register(model_name, "good", "good2"))
    promote(reg, model_name, v1, "staging", config=config, mi=mi)
    promote(reg, model_name, v1, "production", config=config, mi=mi)
    promote(reg, model_name, v2, "staging", config=config, mi=mi)
    before = _snapshot(reg, model_name)
    real = reg.client.set_registered_model_alias
    calls = []

    def flaky(name, alias, version):
        calls.append(alias)
        if alias == "champion":  # the production alias was already moved; then the server fails
            raise RuntimeError("simulated server failure")
        return real(name, alias, version)

    monkeypatch.setattr(reg.client, "set_registered_model_alias", flaky)
    with pytest.raises(TransitionFailed, match="partial changes were undone"):
        promote(reg, model_name, v2, "production", config=config, mi=mi)
    monkeypatch.undo()
    assert "production" in calls
    assert _snapshot(reg, model_name) == before
    assert consistency_problems(read_state(reg, model_name)) == []


def test_inconsistency_found_after_the_writes_is_undone(
    reg, mi, register, model_name, config, monkeypatch
):
    """Every write "succeeds" but the server drops one (@champion); the check must undo the rest."""
    v1, v2 = (rv.version for rv in register(model_name, "good", "good2"))
    promote(reg, model_name, v1, "staging", config=config, mi=mi)
    promote(reg, model_name, v1, "production", config=config, mi=mi)
    promote(reg, model_name, v2, "staging", config=config, mi=mi)
    before = _snapshot(reg, model_name)
    real = reg.client.set_registered_model_alias

    def lossy(name, alias, version):
        if alias == "champion" and str(version) == v2:
            return None  # acknowledged, never stored
        return real(name, alias, version)

    monkeypatch.setattr(reg.client, "set_registered_model_alias", lossy)
    with pytest.raises(TransitionFailed) as info:
        promote(reg, model_name, v2, "production", config=config, mi=mi)
    monkeypatch.undo()
    assert "inconsistent" in str(info.value) and "@champion -> 1" in str(info.value)
    assert "its changes were undone" in str(info.value) and info.value.exit_code == 5
    assert _snapshot(reg, model_name) == before
    assert consistency_problems(read_state(reg, model_name)) == []
