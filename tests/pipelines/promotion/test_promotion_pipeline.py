"""The ``promotion`` pipeline: wiring, and a real Kedro run of its nodes inside an MLflow run."""

from __future__ import annotations

import uuid

import mlflow
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from tests.modeling.rows import comparison_json, comparison_row
from tests.registry.registry_helpers import export_linear, make_model_input

from sensorops.pipelines.promotion import create_pipeline
from sensorops.registry import GateRefused, connect, read_state

KEDRO_RUN_ID = "2026-11-29T12.00.00.000Z"


def test_pipeline_wiring():
    pipe = create_pipeline()
    nodes = {n.name: n for n in pipe.nodes}
    assert set(nodes) == {"register_models", "promote_to_staging"}
    for name, node in nodes.items():
        assert node.func.__name__ == name and "promotion" in node.tags
    assert set(pipe.inputs()) == {
        "mdl_export_summary",
        "rpt_compression_comparison",
        "rpt_dq_summary",
        "rpt_evaluation",
        "mdl_training_summary",
        "mi_model_input",
        "params:promotion",
        "mdl_outlier_filter",  # the preprocessing state of the self-contained pyfunc model
        "mdl_dtw_references",
        "mdl_normalization_stats",
        "params:serving",  # the infra check before staging
        "int_sensor_long",
    }
    assert pipe.outputs() == {"rpt_promotion"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("promo")
    mi = make_model_input(seed=1)
    return {
        "mi_model_input": mi,
        "mdl_export_summary": {
            "onnx_path": str(export_linear(d / "model.onnx", shift=0)),
            "opset": 17,
            "parity_passed": True,
            "parity_max_abs_diff": 2e-8,
            "execution_provider": "CPUExecutionProvider",
        },
        "rpt_compression_comparison": comparison_json(  # the compression pipeline's JSON shape
            comparison_row("fp32_torch", None, None, False, accuracy=0.97),
            comparison_row(
                "int8",
                str(export_linear(d / "q.onnx", shift=0, noise=0.01)),
                True,
                True,
                accuracy=0.98,
            ),
            comparison_row(
                "pruned", str(export_linear(d / "p.onnx", shift=1)), False, False, accuracy=0.1
            ),
        ),
        "rpt_dq_summary": {  # the data_quality pipeline's shape
            "passed": True,
            "stages": {
                "raw": {
                    "passed": True,
                    "tiers": {
                        "tier1": {"success": True, "action": "fail", "evaluated": 3, "failed": 0}
                    },
                }
            },
        },
        "rpt_evaluation": {"accuracy": 0.97, "macro_f1": 0.96},
        "mdl_training_summary": {
            "mlflow_child_run_id": "child123",
            "model_name": "cnn",
            "best_val_metric": 0.95,
        },
    }


# bare ONNX registration (no preprocessing artifacts), no sandboxed infra check
NO_SERVING = {
    "mdl_outlier_filter": None,
    "mdl_dtw_references": None,
    "mdl_normalization_stats": None,
    "params:serving": {"infra_check": {"enabled": False}},
    "int_sensor_long": None,
}


def _run(inputs, params):
    catalog = DataCatalog(
        {
            k: MemoryDataset(v)
            for k, v in {**NO_SERVING, **inputs, "params:promotion": params}.items()
        }
    )
    catalog["rpt_promotion"] = MemoryDataset()
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog["rpt_promotion"].load()


@pytest.fixture
def active_run(mlflow_server):
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("sensorops-pipeline-test")
    try:
        with mlflow.start_run(tags={"run_id": KEDRO_RUN_ID}) as run:  # what kedro-mlflow sets
            yield run.info.run_id
    finally:
        mlflow.set_tracking_uri(old)


def test_kedro_run_registers_and_stages_inside_the_active_run(inputs, active_run, mlflow_server):
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    params = {"model_name": name, "lock": {"settle_s": 0.4, "max_write_gap_s": 0.3}}
    report = _run(inputs, params)
    assert report["status"] == "staged" and report["version"] == "1"
    assert [v["variant"] for v in report["registered"]] == ["fp32", "int8"]
    assert report["aliases"] == {"staging": "1"} and report["stages"] == {
        "1": "staging",
        "2": "candidate",
    }
    assert report["evidence_run_id"] == active_run
    reg = connect(mlflow_server)
    tags = reg.client.get_model_version(name, "1").tags
    assert tags["kedro.run_id"] == KEDRO_RUN_ID and tags["mlflow.run_id"] == active_run
    assert tags["training.mlflow_child_run_id"] == "child123" and tags["dq.raw.tier1"].startswith(
        "pass"
    )
    assert tags["parity.max_abs_diff"] == "2e-08" and tags["parity.passed"] == "true"
    assert reg.client.get_model_version(name, "1").run_id == active_run
    assert read_state(reg, name).versions["1"].legacy_stage == "Staging"


def test_refusal_is_reported_or_fails_the_run(inputs, active_run, mlflow_server):
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    bad_dq = {
        **inputs,
        "rpt_dq_summary": {"raw": {"tier1": {"success": False, "action": "fail"}}, "passed": False},
    }
    params = {
        "model_name": name,
        "register_compression_variants": False,
        "lock": {"settle_s": 0.4, "max_write_gap_s": 0.3},
    }
    report = _run(bad_dq, params)
    assert report["status"] == "refused" and report["refused_by"] == "data_quality"
    assert report["aliases"] == {} and report["stages"] == {"1": "candidate"}
    with pytest.raises(GateRefused, match="data_quality"):
        _run(bad_dq, {**params, "fail_on_refusal": True})


def test_register_node_parses_the_comparison_once_and_rejects_other_shapes(inputs):
    from sensorops.pipelines.promotion.nodes import register_models
    from sensorops.registry import RegistryConfigError

    rows = inputs["rpt_compression_comparison"]["variants"]
    with pytest.raises(RegistryConfigError, match="rpt_compression_comparison must be"):
        register_models(
            inputs["mdl_export_summary"],
            rows,  # a bare list of rows is not what the compression pipeline writes
            inputs["rpt_dq_summary"],
            inputs["rpt_evaluation"],
            inputs["mdl_training_summary"],
            inputs["mi_model_input"],
            {"model_name": "never-registered"},
        )
