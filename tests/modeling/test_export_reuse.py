"""Compression reuses the exported fp32 ONNX only if it was exported from the current checkpoint."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from sensorops import metrics as shared_metrics
from sensorops.model_input import ModelInput
from sensorops.modeling import (
    CompressionConfig,
    ExportConfig,
    compress_checkpoint,
    export_checkpoint,
)
from sensorops.modeling.metrics import classification_scores, file_sha256
from sensorops.modeling.workflow import reusable_export


def _config(out: Path) -> CompressionConfig:
    return CompressionConfig(
        variants=["fp32_torch", "fp32_onnx", "int8_dynamic"],
        output_dir=str(out),
        latency={"batch_sizes": [1], "n_warmup": 0, "n_iter": 2},
    )


def test_export_summary_records_the_checkpoint_hash(
    checkpoints: dict[str, Path], exports: dict[str, dict]
) -> None:
    for name, path in checkpoints.items():
        assert exports[name]["checkpoint_sha256"] == file_sha256(path)
        assert len(exports[name]["checkpoint_sha256"]) == 64


def test_reusable_export_only_for_the_same_checkpoint(
    checkpoints: dict[str, Path], exports: dict[str, dict], caplog: pytest.LogCaptureFixture
) -> None:
    summary = exports["resnet1d"]
    assert reusable_export(str(checkpoints["resnet1d"]), summary) == Path(summary["onnx_path"])
    with caplog.at_level(logging.WARNING, logger="sensorops.modeling.workflow"):
        assert reusable_export(str(checkpoints["transformer"]), summary) is None
    assert "changed since" in caplog.text and "exporting fp32 ONNX again" in caplog.text
    caplog.clear()
    old = {k: v for k, v in summary.items() if k != "checkpoint_sha256"}
    with caplog.at_level(logging.WARNING, logger="sensorops.modeling.workflow"):
        assert reusable_export(str(checkpoints["resnet1d"]), old) is None
    assert "no checkpoint_sha256" in caplog.text
    assert reusable_export(str(checkpoints["resnet1d"]), None) is None
    missing = {**summary, "onnx_path": str(Path(summary["onnx_path"]).with_name("gone.onnx"))}
    assert reusable_export(str(checkpoints["resnet1d"]), missing) is None


def test_retrain_without_reexport_compresses_the_new_checkpoint(
    checkpoints: dict[str, Path], model_input: ModelInput, tmp_path: Path
) -> None:
    best = tmp_path / "best.pt"
    shutil.copyfile(checkpoints["resnet1d"], best)
    old_export = export_checkpoint(
        str(best), model_input, ExportConfig(output_dir=str(tmp_path / "onnx"))
    )
    # same path, new weights: retrained (another architecture, so the ONNX graphs differ clearly)
    shutil.copyfile(checkpoints["lstm_attention"], best)
    table = compress_checkpoint(str(best), model_input, _config(tmp_path / "c"), old_export)
    rows = {r.name: r.to_dict() for r in table.rows}
    assert rows["fp32_onnx"]["onnx_path"] != old_export["onnx_path"]
    assert Path(rows["fp32_onnx"]["onnx_path"]).parent == tmp_path / "c"
    assert rows["fp32_onnx"]["accuracy"] == pytest.approx(rows["fp32_torch"]["accuracy"])
    assert rows["fp32_onnx"]["size_bytes"] != Path(old_export["onnx_path"]).stat().st_size

    # unchanged checkpoint: the parity-checked export is reused
    shutil.copyfile(checkpoints["resnet1d"], best)
    fresh = export_checkpoint(
        str(best), model_input, ExportConfig(output_dir=str(tmp_path / "onnx2"))
    )
    table = compress_checkpoint(str(best), model_input, _config(tmp_path / "d"), fresh)
    rows = {r.name: r.to_dict() for r in table.rows}
    assert rows["fp32_onnx"]["onnx_path"] == fresh["onnx_path"]


def test_modeling_scores_are_the_shared_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = shared_metrics.classification_scores

    def spy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
        calls.append(n_classes)
        return real(y_true, y_pred, n_classes)

    monkeypatch.setattr(shared_metrics, "classification_scores", spy)
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=np.float32)
    scores = classification_scores(np.array([0, 1]), logits, 3)
    assert calls == [3]
    assert scores == {"accuracy": 1.0, "macro_f1": pytest.approx(2 / 3)}
