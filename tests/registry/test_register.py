"""Registration against the real MLflow server: tags, lineage, signature, load by alias."""

from __future__ import annotations

import json

import mlflow
import mlflow.onnx
import numpy as np
import onnx
import pytest

from sensorops.registry import (
    ComparisonRow,
    NotFoundError,
    PromotionConfig,
    RegistrationFailed,
    RegistryConfigError,
    VariantSpec,
    build_variants,
    describe_version,
    lineage_tags,
    parse_comparison,
    promote,
    read_history,
    read_state,
    register_variants,
)
from sensorops.registry.inspect import ModelRef
from sensorops.registry.lineage import split_digest
from sensorops.registry.scoring import onnx_logits
from sensorops.registry.workflow import register_from_reports
from tests.modeling.rows import comparison_json, comparison_row
from tests.registry.registry_helpers import GOOD_TAGS


def test_register_sets_lineage_tags_inputs_and_description(reg, mi, register, model_name):
    (rv,) = register(model_name, "good")
    mv = reg.client.get_model_version(model_name, rv.version)
    tags = mv.tags
    assert tags["sensorops.stage"] == "candidate"
    assert tags["sensorops.variant"] == "good"
    assert tags["data.test_digest"] == split_digest(mi, "test")
    assert tags["data.train_digest"] == split_digest(mi, "train")
    assert tags["data.meta.raw_sha256"] == "deadbeef"
    assert tags["dq.passed"] == "true" and tags["parity.passed"] == "true"
    assert tags["mlflow.run_id"] == mv.run_id == rv.run_id
    assert tags["kedro.run_id"] == "none"  # no kedro run here
    assert len(tags["git.commit"]) >= 7 and tags["sensorops.version"] != ""
    assert float(tags["metric.test_accuracy"]) == rv.test_accuracy > 0.9
    assert "test accuracy" in mv.description and rv.run_id in mv.description
    # the run links to the exact data (mlflow.data), with our digests
    run = reg.client.get_run(mv.run_id)
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert digests["mi_model_input_test"] == split_digest(mi, "test")
    assert digests["mi_model_input_train"] == split_digest(mi, "train")
    # history records the registration
    (event,) = read_history(reg, model_name)
    assert (
        event["kind"] == "register"
        and event["version"] == rv.version
        and event["to"] == "candidate"
    )


def test_signature_input_example_and_load_by_alias_match_onnxruntime(
    reg, mi, onnx_models, register, model_name, config
):
    (rv,) = register(model_name, "good")
    promote(reg, model_name, rv.version, "staging", config=config, mi=mi)
    promote(reg, model_name, rv.version, "production", config=config, mi=mi)
    expected = onnx_logits(onnx.load(str(onnx_models["good"])).SerializeToString(), mi.X["test"])
    with reg.fluent():
        info = mlflow.models.get_model_info(f"models:/{model_name}@production")
        assert info.signature is not None and info.signature.inputs.inputs[0].shape == (-1, 8, 3)
        assert info.saved_input_example_info is not None
        for alias in ("production", "champion"):
            proto = mlflow.onnx.load_model(f"models:/{model_name}@{alias}")
            np.testing.assert_allclose(
                onnx_logits(proto.SerializeToString(), mi.X["test"]), expected, rtol=1e-6
            )
        pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name}@production")
        out = pyfunc.predict(mi.X["test"])
    logits = out["logits"] if isinstance(out, dict) else np.asarray(out)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert np.mean(np.argmax(logits, 1) == mi.y["test"]) == rv.test_accuracy


def test_register_from_reports_registers_export_and_gate_passed_variants(
    reg, mi, onnx_models, model_name, tmp_path
):
    config = PromotionConfig.from_params(
        {"model_name": model_name, "lock": {"settle_s": 0.4, "max_write_gap_s": 0.3}}
    )
    export_summary = {
        "onnx_path": str(onnx_models["good"]),
        "opset": 17,
        "parity_passed": True,
        "parity_max_abs_diff": 3e-8,
        "execution_provider": "CPUExecutionProvider",
    }
    comparison = comparison_json(
        comparison_row(
            "int8_dynamic", str(onnx_models["good2"]), True, accuracy=0.97, delta_points=-0.5
        ),
        comparison_row(
            "pruned_50", str(onnx_models["bad"]), False, accuracy=0.1, delta_points=-80.0
        ),
    )
    dq = {
        "passed": True,
        "stages": {
            "raw": {
                "passed": True,
                "tiers": {
                    "tier1": {"success": True, "action": "fail", "evaluated": 5, "failed": 0}
                },
            }
        },
    }
    training = {"mlflow_child_run_id": "abc123", "model_name": "cnn", "best_val_metric": 0.9}
    out = register_from_reports(
        export_summary,
        parse_comparison(comparison),
        dq,
        {"accuracy": 0.99, "macro_f1": 0.98},
        mi,
        config,
        training,
        reg,
    )
    assert [v["variant"] for v in out["versions"]] == ["fp32", "int8_dynamic"]
    json.dumps(out)  # the node output is JSON-serialisable
    base = reg.client.get_model_version(model_name, out["versions"][0]["version"]).tags
    variant = reg.client.get_model_version(model_name, out["versions"][1]["version"]).tags
    assert base["eval.accuracy"] == "0.99" and base["compression.gate_passed"] == "n/a"
    assert base["dq.raw.tier1"].startswith("pass") and base["parity.max_abs_diff"] == "3e-08"
    assert base["training.mlflow_child_run_id"] == "abc123" and base["export.opset"] == "17"
    assert (
        variant["compression.gate_passed"] == "true"
        and variant["compression.delta_points"] == "-0.5"
    )
    assert set(read_state(reg, model_name).versions) == {"1", "2"}


def test_build_variants_and_lineage_tags_shapes():
    cfg = PromotionConfig()
    rows = [
        comparison_row("fp32_torch", None, None, False, accuracy=0.9),
        comparison_row("q", "/m/q.onnx", True, True, accuracy=0.89, delta_points=-1.0),
        comparison_row("dup", "/m/model.onnx", True, True),
        comparison_row("p", "/m/p.onnx", False, False),
    ]
    specs = build_variants({"onnx_path": "/m/model.onnx"}, rows, None, cfg)
    assert [s.variant for s in specs] == ["fp32", "q"]
    assert (
        specs[1].tags["compression.delta_points"] == "-1"
        and specs[1].tags["compression.gate_passed"] == "true"
    )
    off = cfg.model_copy(update={"register_compression_variants": False})
    assert [s.variant for s in build_variants({"onnx_path": "/m/model.onnx"}, rows, None, off)] == [
        "fp32"
    ]
    tags = lineage_tags(
        {"onnx_path": "x", "parity_passed": False},
        {"passed": False, "s": {"t": {"success": False, "action": "fail"}}},
    )
    assert (
        tags["parity.passed"] == "false"
        and tags["dq.passed"] == "false"
        and tags["dq.s.t"] == "fail:fail"
    )


def test_parse_comparison_takes_only_the_compression_pipeline_shape():
    rows = [
        comparison_row("fp32_torch", None, None, False, accuracy=0.9),
        comparison_row("q", "/m/q.onnx", True, True, accuracy=0.89),
        comparison_row("old", "/m/o.onnx", True, True),
    ]
    assert parse_comparison(comparison_json(*rows)) == rows
    assert all(isinstance(r, ComparisonRow) for r in rows)
    for bad, needle in [
        ([{"name": "q", "gate_passed": True}], "got list"),  # a bare list of rows
        ({"q": {"gate_passed": True}}, "got keys ['q']"),  # {name: row}
        ({"variants": [{"onnx_path": "/m/q.onnx"}]}, "variants[0] needs a non-empty string 'name'"),
        ({"variants": [{"name": "q", "gate_passed": "yes"}]}, "'gate_passed' must be true"),
        ({"variants": [{"name": "q", "registrable": 1}]}, "'registrable' must be true or false"),
    ]:
        with pytest.raises(RegistryConfigError) as info:
            parse_comparison(bad)
        assert needle in str(info.value) and "rpt_compression_comparison" in str(info.value)


def test_failed_variant_deletes_the_versions_this_call_created(
    reg, mi, onnx_models, register, model_name, config, tmp_path
):
    (first,) = register(model_name, "good")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    specs = [VariantSpec("good2", str(onnx_models["good2"])), VariantSpec("broken", str(broken))]
    with pytest.raises(RegistrationFailed) as info:
        register_variants(specs, mi, model_name, GOOD_TAGS, reg=reg, config=config)
    message = str(info.value)
    assert "variant 'broken'" in message and "DecodeError" in message
    assert "deleted the version(s) ['2'] this call had created" in message
    assert info.value.exit_code == 5
    # all or nothing: v2 (good2) is gone, v1 and its history are untouched
    assert set(read_state(reg, model_name).versions) == {first.version}
    assert [e["version"] for e in read_history(reg, model_name)] == [first.version]


def test_failure_after_register_model_deletes_that_version_and_the_new_model(
    reg, register, model_name, monkeypatch
):
    real = reg.client.update_model_version
    calls = []

    def flaky(name, version, description=None):
        calls.append(version)
        if len(calls) == 2:  # v2 exists already; then the server fails
            raise RuntimeError("simulated server failure")
        return real(name, version, description=description)

    monkeypatch.setattr(reg.client, "update_model_version", flaky)
    with pytest.raises(RegistrationFailed, match=r"deleted the version\(s\) \['1', '2'\]"):
        register(model_name, "good", "good2")
    monkeypatch.undo()
    with pytest.raises(NotFoundError):  # this call created the registered model: gone too
        read_state(reg, model_name)


def test_show_describes_lineage_chain(reg, mi, register, model_name, config):
    (rv,) = register(model_name, "good", tags={"training.mlflow_child_run_id": "not-a-run"})
    info = describe_version(reg, ModelRef.parse(f"{model_name}/{rv.version}"))
    assert info["lineage"]["mlflow_run"]["run_id"] == rv.run_id
    assert info["lineage"]["mlflow_run"]["status"] == "FINISHED"
    assert info["lineage"]["training_child_run"]["status"] == "run not found"
    assert info["data"]["test_digest"] == split_digest(mi, "test")
    assert info["dq"]["passed"] == "true"
    assert {i["name"] for i in info["inputs"]} == {"mi_model_input_train", "mi_model_input_test"}
