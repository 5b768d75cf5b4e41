"""The ``export`` Kedro pipeline: wiring, and a real run on a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from tests.modeling.helpers import make_model_input, train_checkpoint

from sensorops.modeling import ModelingError, ParityError
from sensorops.pipelines.export import create_pipeline
from sensorops.pipelines.export.nodes import export_onnx_model

ROOT = Path(__file__).resolve().parents[3]


def _params(env: str = "base") -> dict[str, Any]:
    params = yaml.safe_load((ROOT / "conf/base/parameters_export.yml").read_text())["export"]
    if env == "test":
        override = yaml.safe_load((ROOT / "conf/test/parameters_export.yml").read_text())["export"]
        params = _merge(params, override)
    return params


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(base[key], value)
            if isinstance(value, dict) and isinstance(base.get(key), dict)
            else value
        )
    return out


def test_pipeline_wiring() -> None:
    pipe = create_pipeline()
    (node,) = pipe.nodes
    assert node.name == "export_onnx_model" and "export" in node.tags
    assert set(node.inputs) == {"mdl_training_summary", "mi_model_input", "params:export"}
    assert set(node.outputs) == {"mdl_export_summary", "rpt_export_metrics"}


def test_catalog_entries_have_layers() -> None:
    catalog = yaml.safe_load((ROOT / "conf/base/catalog_export.yml").read_text())
    assert set(catalog) == {"mdl_export_summary", "rpt_export_metrics"}
    for entry in catalog.values():
        assert entry["metadata"]["kedro-viz"]["layer"] in {"models", "reporting"}


def test_export_pipeline_runs(tmp_path: Path) -> None:
    mi = make_model_input()
    ckpt = train_checkpoint("resnet1d", mi, tmp_path / "best.pt")
    params = _merge(_params("test"), {"output_dir": str(tmp_path / "onnx")})
    catalog = DataCatalog(
        {
            "mdl_training_summary": MemoryDataset(
                {"best_checkpoint": str(ckpt), "model_name": "resnet1d"}
            ),
            "mi_model_input": MemoryDataset(mi, copy_mode="assign"),
            "params:export": MemoryDataset(params),
            "mdl_export_summary": MemoryDataset(),
            "rpt_export_metrics": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    summary = catalog.load("mdl_export_summary")
    assert summary["parity_passed"] is True and summary["opset"] == 20
    assert Path(summary["onnx_path"]) == tmp_path / "onnx" / "model_fp32.onnx"
    assert summary["execution_provider"] == "CPUExecutionProvider"
    metrics = catalog.load("rpt_export_metrics")
    assert metrics["export.parity_max_abs_diff"]["value"] <= 1e-4


def test_node_errors_are_clear(tmp_path: Path) -> None:
    mi = make_model_input(n_per_class={"train": 2, "val": 1, "test": 2})
    with pytest.raises(ModelingError, match="mdl_training_summary lacks 'best_checkpoint'"):
        export_onnx_model({"model_name": "x"}, mi, {})
    with pytest.raises(
        ModelingError, match="does not exist; run `kedro run --pipelines=training` first"
    ):
        export_onnx_model({"best_checkpoint": str(tmp_path / "missing.pt")}, mi, {})
    with pytest.raises(ModelingError, match=r"export.opset: must be one of"):
        export_onnx_model({"best_checkpoint": "x"}, mi, {"opset": 9})
    ckpt = train_checkpoint("resnet1d", mi, tmp_path / "c.pt", epochs=1)
    with pytest.raises(ParityError, match="ONNX parity failed"):
        export_onnx_model(
            {"best_checkpoint": str(ckpt)},
            mi,
            {"output_dir": str(tmp_path), "parity": {"atol": 1e-15}},
        )
