"""Cross-pipeline artifacts: typed, frozen, one load/save, one data-quality rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from sensorops.contracts import (
    ArtifactError,
    DataQualitySummary,
    EvaluationReport,
    ExportSummary,
    TrainingSummary,
)
from sensorops.registry.gates import data_quality_gate

DIGESTS = {"train": "a" * 16, "val": "b" * 16, "test": "c" * 16}
SUMMARY = {
    "passed": False,
    "warnings": ["model_input.tier3"],
    "stages": {
        "raw": {
            "passed": False,
            "skipped": False,
            "data_docs_index": "data/08_reporting/data_docs/index.html",
            "tiers": {
                "tier1": {"success": False, "action": "fail", "evaluated": 9, "failed": 2},
                "tier2": {"success": True, "action": "fail", "evaluated": 4, "failed": 0},
            },
        },
        "model_input": {
            "passed": True,
            "tiers": {"tier3": {"success": False, "action": "warn", "statistics": {"x": 0.5}}},
        },
    },
    "model_input_digests": DIGESTS,
}


def test_round_trip_keeps_the_producers_file(tmp_path: Path) -> None:
    summary = DataQualitySummary.from_dict(SUMMARY)
    assert summary.to_dict() == SUMMARY  # extras (skipped, statistics) travel untouched
    path = tmp_path / "dq_summary.json"
    summary.save(path)
    assert json.loads(path.read_text()) == SUMMARY
    assert DataQualitySummary.load(path) == summary
    with pytest.raises(ValidationError):
        summary.passed = True  # type: ignore[misc]  # frozen


def test_the_rule_names_failing_warned_and_stale() -> None:
    summary = DataQualitySummary.from_dict(SUMMARY)
    verdict = summary.verdict(DIGESTS)
    assert not verdict.passed
    assert (verdict.failing, verdict.warned, verdict.stale_splits) == (
        ["raw.tier1"],
        ["model_input.tier3"],
        [],
    )
    passed = DataQualitySummary.from_dict({"passed": True, "model_input_digests": DIGESTS})
    assert passed.verdict(DIGESTS).passed
    stale = passed.verdict({**DIGESTS, "test": "d" * 16})
    assert not stale.passed and stale.stale_splits == ["test"]
    undigested = DataQualitySummary.from_dict({"passed": True})
    assert not undigested.verdict(DIGESTS).passed  # training: no digests, no trust
    assert undigested.verdict(DIGESTS, require_digests=False).passed  # old registry versions


def test_tags_round_trip_gives_the_same_verdict_as_the_file() -> None:
    """The registry gate (on version tags) and training (on the file) apply one rule."""
    summary = DataQualitySummary.from_dict(SUMMARY)
    tags = summary.to_tags()
    assert tags["dq.raw.tier1"] == "fail:fail (evaluated=9, failed=2)"
    assert tags["dq.model_input.tier3"] == "fail:warn"
    back = DataQualitySummary.from_tags(tags)
    for current in (DIGESTS, {**DIGESTS, "val": "e" * 16}):
        file_verdict = summary.verdict(current)
        tag_verdict = back.verdict(current)
        assert (file_verdict.passed, file_verdict.failing, file_verdict.stale_splits) == (
            tag_verdict.passed,
            tag_verdict.failing,
            tag_verdict.stale_splits,
        )
        gate = data_quality_gate({**tags, **{f"data.{k}_digest": v for k, v in current.items()}})
        assert gate.passed == file_verdict.passed
        assert gate.numbers["failing"] == [f"dq.{k}" for k in file_verdict.failing]


def test_flat_shape_is_read_as_stages() -> None:
    flat = DataQualitySummary.from_dict(
        {"passed": False, "raw": {"tier1": {"success": False, "action": "fail"}}}
    )
    assert list(flat.tiers()) == ["raw.tier1"]


def test_contract_errors_name_the_artifact_and_field(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"rpt_dq_summary\.passed: .*got 'maybe'"):
        DataQualitySummary.from_dict({"passed": "maybe"})
    with pytest.raises(ArtifactError, match=r"rpt_evaluation\.accuracy: Field required"):
        EvaluationReport.from_dict({"macro_f1": 0.5})
    with pytest.raises(ArtifactError, match=r"mdl_export_summary: .*none\.json does not exist"):
        ExportSummary.load(tmp_path / "none.json")
    with pytest.raises(ArtifactError, match="has no best_checkpoint"):
        TrainingSummary.from_dict({"model_name": "x"}).checkpoint()


def test_headline_metrics_come_from_the_contract() -> None:
    training = TrainingSummary.from_dict(
        {
            "best_val_metric": 0.9,
            "final_step": 12,
            "epochs_completed": 3,
            "train_samples_per_s": None,
        }
    )
    assert training.metrics() == {
        "best_val_metric": {"value": 0.9, "step": 0},
        "final_step": {"value": 12.0, "step": 0},
        "epochs_completed": {"value": 3.0, "step": 0},
    }
    export = ExportSummary.from_dict(
        {
            "onnx_path": "m.onnx",
            "opset": 20,
            "size_bytes": 10,
            "parity_max_abs_diff": 1e-6,
            "parity_pred_mismatches": 0,
            "onnx_parity_accuracy": 0.75,
        }
    )
    assert export.metrics()["export.opset"] == {"value": 20.0, "step": 0}
    assert len(export.metrics()) == 5
