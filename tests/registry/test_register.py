"""Registration against the real MLflow server: tags, lineage, signature, load by alias."""

from __future__ import annotations

import json

import mlflow
import mlflow.onnx
import numpy as np
import onnx

from sensorops.registry import (
    PromotionConfig,
    build_variants,
    describe_version,
    lineage_tags,
    promote,
    read_history,
    read_state,
)
from sensorops.registry.inspect import ModelRef
from sensorops.registry.lineage import split_digest
from sensorops.registry.scoring import onnx_logits
from sensorops.registry.workflow import register_from_reports


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
        {"model_name": model_name, "lock": {"settle_s": 0.3, "max_write_gap_s": 0.2}}
    )
    export_summary = {
        "onnx_path": str(onnx_models["good"]),
        "opset": 17,
        "parity_passed": True,
        "parity_max_abs_diff": 3e-8,
        "execution_provider": "CPUExecutionProvider",
    }
    comparison = {
        "variants": [
            {
                "name": "int8_dynamic",
                "onnx_path": str(onnx_models["good2"]),
                "accuracy": 0.97,
                "delta_points": -0.5,
                "gate_passed": True,
            },
            {
                "name": "pruned_50",
                "onnx_path": str(onnx_models["bad"]),
                "accuracy": 0.1,
                "delta_points": -80.0,
                "gate_passed": False,
            },
        ]
    }
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
        comparison,
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
    specs = build_variants(
        {"onnx_path": "/m/model.onnx"},
        [
            {"name": "q", "onnx_path": "/m/q.onnx", "gate_passed": True},
            {"name": "dup", "onnx_path": "/m/model.onnx", "gate_passed": True},
        ],
        None,
        cfg,
    )
    assert [s.variant for s in specs] == ["fp32", "q"]
    tags = lineage_tags(
        {"onnx_path": "x", "parity_passed": False},
        {"passed": False, "s": {"t": {"success": False, "action": "fail"}}},
    )
    assert (
        tags["parity.passed"] == "false"
        and tags["dq.passed"] == "false"
        and tags["dq.s.t"] == "fail:fail"
    )


def test_show_describes_lineage_chain(reg, mi, register, model_name, config):
    (rv,) = register(model_name, "good", tags={"training.mlflow_child_run_id": "not-a-run"})
    info = describe_version(reg, ModelRef.parse(f"{model_name}/{rv.version}"))
    assert info["lineage"]["mlflow_run"]["run_id"] == rv.run_id
    assert info["lineage"]["mlflow_run"]["status"] == "FINISHED"
    assert info["lineage"]["training_child_run"]["status"] == "run not found"
    assert info["data"]["test_digest"] == split_digest(mi, "test")
    assert info["dq"]["passed"] == "true"
    assert {i["name"] for i in info["inputs"]} == {"mi_model_input_train", "mi_model_input_test"}
