"""The ``compression`` Kedro pipeline: a real run of every variant on a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from tests.modeling.helpers import make_model_input, train_checkpoint

from sensorops.modeling import VARIANTS, ModelingError
from sensorops.pipelines.compression import create_pipeline
from sensorops.pipelines.compression.nodes import build_compression_comparison
from sensorops.pipelines.export import create_pipeline as create_export_pipeline

ROOT = Path(__file__).resolve().parents[3]


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner does not release, so the test can read intermediate outputs."""

    def _release(self) -> None:
        pass


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(base[key], value)
            if isinstance(value, dict) and isinstance(base.get(key), dict)
            else value
        )
    return out


def _params(name: str, tmp_path: Path) -> dict[str, Any]:
    base = yaml.safe_load((ROOT / f"conf/base/parameters_{name}.yml").read_text())[name]
    test = yaml.safe_load((ROOT / f"conf/test/parameters_{name}.yml").read_text())[name]
    return _merge(_merge(base, test), {"output_dir": str(tmp_path / name)})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DataCatalog:
    """export + compression on a tiny resnet1d, through Kedro's runner."""
    tmp = tmp_path_factory.mktemp("compression")
    mi = make_model_input()
    ckpt = train_checkpoint("resnet1d", mi, tmp / "best.pt")
    outputs = [
        "mdl_export_summary",
        "rpt_export_metrics",
        "rpt_compression_comparison",
        "rpt_compression_comparison_csv",
        "rpt_compression_comparison_md",
        "rpt_compression_metrics",
        "rpt_compression_plot",
    ]
    catalog = DataCatalog(
        {
            "mdl_training_summary": MemoryDataset(
                {"best_checkpoint": str(ckpt), "model_name": "resnet1d"}
            ),
            "mi_model_input": MemoryDataset(mi, copy_mode="assign"),
            "params:export": MemoryDataset(_params("export", tmp)),
            "params:compression": MemoryDataset(_params("compression", tmp)),
            **{name: KeptDataset() for name in outputs},
        }
    )
    SequentialRunner().run(create_export_pipeline() + create_pipeline(), catalog)
    return catalog


def test_pipeline_wiring() -> None:
    pipe = create_pipeline()
    assert pipe.nodes[0].name == "build_compression_comparison"
    assert {n.name for n in pipe.nodes} == {
        "build_compression_comparison",
        "render_compression_reports",
        "plot_compression_tradeoffs",
    }
    assert all(n.func.__name__ == n.name for n in pipe.nodes)
    assert all("compression" in n.tags for n in pipe.nodes)
    assert pipe.inputs() == {
        "mdl_training_summary",
        "mi_model_input",
        "mdl_export_summary",
        "params:compression",
    }
    catalog = yaml.safe_load((ROOT / "conf/base/catalog_compression.yml").read_text())
    assert set(pipe.outputs()) <= set(catalog)
    assert all(entry["metadata"]["kedro-viz"]["layer"] == "reporting" for entry in catalog.values())
    plot = catalog["rpt_compression_plot"]
    assert plot["type"] == "kedro_mlflow.io.artifacts.MlflowArtifactDataset"
    assert plot["dataset"]["type"] == "sensorops.datasets.MatplotlibDataset"
    assert plot["dataset"]["filepath"] == "data/08_reporting/compression_tradeoffs.png"


def test_every_variant_is_evaluated_and_gated(run: DataCatalog) -> None:
    data = run.load("rpt_compression_comparison")
    rows = {r["name"]: r for r in data["variants"]}
    assert list(rows) == list(VARIANTS)
    for name, row in rows.items():
        for key in (
            "accuracy",
            "macro_f1",
            "delta_points",
            "size_bytes",
            "params",
            "sparsity",
            "p50_ms_b1",
            "p99_ms_b1",
            "p50_ms_b64",
            "p99_ms_b64",
            "gate_passed",
            "onnx_path",
        ):
            assert key in row, (name, key)
        if name == "fp32_torch":
            assert row["onnx_path"] is None and row["gate_passed"] is None
            continue
        assert row["execution_provider"] == "CPUExecutionProvider"
        ort.InferenceSession(row["onnx_path"], providers=["CPUExecutionProvider"])  # loads
        drop = -row["delta_points"]
        clearly_worse = drop > row["gate_limit_points"] + 1e-9 and row["mcnemar_p"] < 0.05
        assert row["gate_passed"] == (not clearly_worse)
        assert row["registrable"] == row["gate_passed"]
        # the paired comparison with fp32 on the same series
        assert row["n_series"] == 30
        assert 0.0 <= row["fidelity"] <= 1.0 and row["ci_low_points"] <= row["ci_high_points"]
        assert row["delta_points"] == pytest.approx(
            100 * (row["wrong_to_right"] - row["right_to_wrong"]) / row["n_series"]
        )
    assert data["registrable"] == [n for n, r in rows.items() if r["registrable"]]
    # the fp32 ONNX row is the parity-checked export, not a second file
    assert rows["fp32_onnx"]["onnx_path"] == run.load("mdl_export_summary")["onnx_path"]
    assert rows["fp32_onnx"]["accuracy"] == rows["fp32_torch"]["accuracy"]
    # (static QDQ on an 8-channel model is graph-dominated; sizes are tested on a wide model in
    # tests/modeling/test_quantization.py)
    assert rows["qat_4bit"]["size_bytes"] < rows["fp32_onnx"]["size_bytes"]
    assert rows["pruned_structured"]["params"] < rows["fp32_torch"]["params"]
    assert rows["pruned_unstructured"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert "uint4" in rows["qat_4bit"]["notes"]
    # each fine-tuned variant reports its optimizer steps; its ONNX graph passed parity vs torch
    for name in ("qat_4bit", "pruned_structured", "pruned_unstructured"):
        assert rows[name]["finetune_steps"] > 0, name
        assert "parity vs torch max |diff|" in rows[name]["notes"], name
    assert "parity vs torch" in rows["fp32_onnx"]["notes"]


def test_reports(run: DataCatalog) -> None:
    frame = run.load("rpt_compression_comparison_csv")
    assert isinstance(frame, pd.DataFrame) and list(frame["name"]) == list(VARIANTS)
    md = run.load("rpt_compression_comparison_md")
    assert md.startswith("# Compression comparison") and md.count("\n| ") >= len(VARIANTS) + 1
    metrics = run.load("rpt_compression_metrics")
    assert metrics["compression.fp32_torch.accuracy"]["step"] == 0


def test_tradeoff_plot_is_saved_as_png(run: DataCatalog, tmp_path: Path) -> None:
    entry = yaml.safe_load((ROOT / "conf/base/catalog_compression.yml").read_text())[
        "rpt_compression_plot"
    ]["dataset"]
    dataset = DataCatalog.from_config(
        {"plot": {**entry, "filepath": str(tmp_path / entry["filepath"])}}
    )
    figure = run.load("rpt_compression_plot")
    size_ax, latency_ax = figure.axes
    assert len(size_ax.collections) == len(VARIANTS) == len(latency_ax.collections)
    assert "p50 latency, batch 1" in latency_ax.get_xlabel()
    dataset.save("plot", figure)
    assert (tmp_path / entry["filepath"]).read_bytes()[:4] == b"\x89PNG"


def test_unknown_variant_name(tmp_path: Path) -> None:
    mi = make_model_input(n_per_class={"train": 2, "val": 1, "test": 1})
    with pytest.raises(
        ModelingError, match=r"compression.variants: must be a subset of .* got unknown \['int2'\]"
    ):
        build_compression_comparison(
            {"best_checkpoint": "x"}, mi, {}, {"variants": ["fp32_torch", "int2"]}
        )
