"""A model below the same run's baseline is never staged without the explicit override."""

from __future__ import annotations

import pytest

from sensorops.registry.baseline_gate import baseline_gate
from sensorops.registry.config import GateConfig, PromotionConfig
from sensorops.registry.gates import evaluate_gates

TAGS = {
    "metric.test_accuracy": "0.390000",
    "eval.baseline_accuracy": "0.8",
    "eval.baseline_name": "baseline_textbook_1nn_dtw",
    "dq.passed": "true",
    "parity.passed": "true",
    "compression.gate_passed": "n/a",
}


def test_below_baseline_is_refused_and_the_message_names_both_numbers() -> None:
    result = baseline_gate(TAGS, "accuracy", 2.0, allow_below_baseline=False)
    assert not result.passed
    assert "0.3900" in result.message and "0.8000" in result.message
    assert "allow_below_baseline" in result.message
    assert result.numbers["gap_points"] == pytest.approx(41.0)


def test_override_lets_it_through_and_says_so() -> None:
    result = baseline_gate(TAGS, "accuracy", 2.0, allow_below_baseline=True)
    assert result.passed and "BELOW" in result.message


@pytest.mark.parametrize(("model", "passed"), [("0.790000", True), ("0.779000", False)])
def test_margin(model: str, passed: bool) -> None:
    tags = {**TAGS, "metric.test_accuracy": model}
    assert baseline_gate(tags, "accuracy", 2.0, allow_below_baseline=False).passed is passed


def test_staging_is_refused_by_the_gate_chain_without_touching_the_registry() -> None:
    """evaluate_gates with the default GateConfig stops at beats_baseline before any model load."""

    def no_mi():
        raise AssertionError("the model input must not be needed")

    report = evaluate_gates(
        reg=None,  # type: ignore[arg-type]  # no registry access before the refusal
        name="m",
        version="1",
        current_stage="candidate",
        target="staging",
        tags=TAGS,
        production_version=None,
        gates=GateConfig(),
        mi_loader=no_mi,
    )
    assert not report.passed and report.first_failure.gate == "beats_baseline"
    ok = evaluate_gates(
        None, "m", "1", "candidate", "staging", TAGS, None,  # type: ignore[arg-type]
        GateConfig(allow_below_baseline=True), no_mi,
    )  # fmt: skip
    assert ok.passed


def test_gate_keys_are_strict() -> None:
    from sensorops.registry.errors import RegistryConfigError

    with pytest.raises(RegistryConfigError, match="allow_below_baseline"):
        PromotionConfig.from_params({"gates": {"allow_below_baselin": True}})
