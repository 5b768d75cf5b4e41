"""The ``training`` pipeline: wiring, catalog entries, and a real run of both nodes through Kedro."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from tests.training.conftest import make_model_input, tiny_config

from sensorops.pipelines.training import create_pipeline

CONF = Path(__file__).resolve().parents[3] / "conf"
LAYERS = {
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
}
PREFIX = {"mdl_": "models", "rpt_": "reporting", "mo_": "model_output"}


def test_nodes_named_tagged_and_wired() -> None:
    pipe = create_pipeline()
    nodes = {n.name: n for n in pipe.nodes}
    assert list(nodes) == ["train_model", "evaluate_model", "plot_training_curves"]
    for node in pipe.nodes:
        assert "training" in node.tags
        assert node.func.__name__ == node.name
    assert nodes["train_model"].inputs == [
        "mi_model_input",
        "rpt_dq_summary",
        "params:training.trainer",
    ]
    assert nodes["evaluate_model"].inputs == [
        "mdl_training_summary",
        "mi_model_input",
        "int_sensor_long",
        "params:training.evaluation",
    ]
    assert nodes["plot_training_curves"].inputs == ["mdl_training_summary"]
    assert nodes["plot_training_curves"].outputs == ["rpt_training_curves"]
    assert pipe.inputs() == {
        "mi_model_input",
        "rpt_dq_summary",
        "int_sensor_long",
        "params:training.trainer",
        "params:training.evaluation",
    }


def test_catalog_entries_have_layers_and_prefixes() -> None:
    catalog = yaml.safe_load((CONF / "base" / "catalog_training.yml").read_text())
    outputs = create_pipeline().all_outputs()
    assert set(catalog) == outputs  # every output is declared, nothing else
    for name, entry in catalog.items():
        assert "." not in name
        layer = entry["metadata"]["kedro-viz"]["layer"]
        assert layer in LAYERS
        assert PREFIX[name.split("_", 1)[0] + "_"] == layer, name
    DataCatalog.from_config(catalog)  # every dataset type resolves
    curves = catalog["rpt_training_curves"]
    assert curves["type"] == "kedro_mlflow.io.artifacts.MlflowArtifactDataset"
    assert curves["dataset"]["type"] == "sensorops.datasets.MatplotlibDataset"
    assert curves["dataset"]["filepath"] == "data/08_reporting/training_curves.png"


@pytest.mark.slow
def test_pipeline_runs_every_node(tmp_path: Path) -> None:
    base = yaml.safe_load((CONF / "base" / "parameters_training.yml").read_text())["training"]
    trainer = tiny_config(tmp_path / "run", loop={"epochs": 4}, model={"name": "transformer"})
    evaluation = {**base["evaluation"], "dtw_sakoe_chiba_radius": 4}
    # the real dataset types of catalog_training.yml, written under tmp_path; the kedro-mlflow
    # wrappers are unwrapped (no MLflow run here) and metrics kept in memory
    config = {}
    for name, entry in yaml.safe_load((CONF / "base" / "catalog_training.yml").read_text()).items():
        entry = entry.get("dataset", entry)
        if "filepath" in entry:
            config[name] = {**entry, "filepath": str(tmp_path / entry["filepath"])}
    catalog = DataCatalog.from_config(config)
    catalog["rpt_training_metrics"] = MemoryDataset()
    catalog["rpt_evaluation_metrics"] = MemoryDataset()
    from sensorops.model_input import model_input_digests

    mi = make_model_input()
    catalog["mi_model_input"] = MemoryDataset(mi)
    catalog["rpt_dq_summary"] = MemoryDataset(
        {
            "passed": True,
            "warnings": [],
            "stages": {},
            "model_input_digests": model_input_digests(mi),
        }
    )
    frames = []
    for split in ("train", "val", "test"):  # the contract table the model input came from
        for sid, label, series in zip(mi.series_ids[split], mi.y[split], mi.X[split], strict=True):
            frame = pd.DataFrame(series, columns=list(mi.channels))
            frame.insert(0, "t", range(len(frame)))
            frame.insert(0, "series_id", sid)
            frame["label"], frame["split"] = mi.classes[label], split
            frames.append(frame)
    catalog["int_sensor_long"] = MemoryDataset(pd.concat(frames, ignore_index=True))
    catalog["params:training.trainer"] = MemoryDataset(trainer)
    catalog["params:training.evaluation"] = MemoryDataset(evaluation)
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    summary = catalog.load("mdl_training_summary")
    for key in (
        "best_checkpoint",
        "last_checkpoint",
        "model_name",
        "mlflow_child_run_id",
        "best_val_metric",
    ):
        assert key in summary
    assert summary["model_name"] == "transformer" and Path(summary["best_checkpoint"]).is_file()
    assert outputs["rpt_training_metrics"].load()["final_step"]["value"] == summary["final_step"]
    report = catalog.load("rpt_evaluation")
    for key in ("accuracy", "macro_f1", "per_class", "roc_auc_ovr", "baseline_1nn_dtw"):
        assert key in report
    textbook = report["baseline_textbook_1nn_dtw"]
    assert textbook["n_reference_series"] == len(mi.y["train"]) + len(mi.y["val"])
    assert report["baseline_accuracy"] == textbook["accuracy"]
    assert report["delta_vs_baseline"]["baseline"] == "baseline_textbook_1nn_dtw"
    assert isinstance(catalog.load("mo_test_predictions"), pd.DataFrame)
    assert isinstance(catalog.load("rpt_classification_report"), pd.DataFrame)
    assert (tmp_path / "data/08_reporting/confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "data/08_reporting/training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert len(summary["history"]) == 4
    assert all(h["train_loss"] > 0 and h["val_loss"] > 0 for h in summary["history"])
    assert outputs["rpt_evaluation_metrics"].load()["test_accuracy"]["value"] == report["accuracy"]


def test_training_refuses_a_failed_or_stale_data_quality_summary() -> None:
    from sensorops.model_input import model_input_digests
    from sensorops.pipelines.training.nodes import DataQualityGateError, require_data_quality_passed

    mi = make_model_input()
    digests = model_input_digests(mi)
    failed = {
        "passed": False,
        "model_input_digests": digests,
        "stages": {"raw": {"tiers": {"tier1": {"success": False, "action": "fail"}}}},
    }
    with pytest.raises(DataQualityGateError, match=r"raw\.tier1"):
        require_data_quality_passed(failed, mi)
    stale = {"passed": True, "model_input_digests": {**digests, "test": "0" * 16}}
    with pytest.raises(DataQualityGateError, match="not made from the current model input"):
        require_data_quality_passed(stale, mi)
    require_data_quality_passed({"passed": True, "model_input_digests": digests}, mi)
