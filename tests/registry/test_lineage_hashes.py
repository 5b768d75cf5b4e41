"""Content-addressed lineage: a file that is not what its summary recorded is refused, by name.

Issue cases 1 (a killed retrain left another ``best.pt`` behind the old training summary) and 4
(a different, valid ONNX copied over ``model_fp32.onnx``).
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

from sensorops.modeling.errors import ModelingError
from sensorops.modeling.workflow import checkpoint_from_summary, reusable_export
from sensorops.registry.register import LineageMismatch, verify_lineage
from tests.modeling.rows import comparison_row


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_swapped_onnx_is_refused_with_both_hashes(onnx_models, tmp_path):
    real = tmp_path / "model_fp32.onnx"
    shutil.copy(onnx_models["good"], real)
    summary = {"onnx_path": str(real), "onnx_sha256": sha(real), "checkpoint_sha256": "c" * 64}
    verify_lineage(summary)  # the file the export wrote: fine
    shutil.copy(onnx_models["bad"], real)  # a valid, different ONNX over it
    with pytest.raises(LineageMismatch) as info:
        verify_lineage(summary)
    message = str(info.value)
    assert str(real) in message and sha(real) in message and summary["onnx_sha256"] in message
    assert "kedro run --pipelines=export" in message and "Nothing was registered" in message


def test_export_of_another_checkpoint_than_training_and_evaluation_describe(onnx_models):
    summary = {"onnx_path": str(onnx_models["good"]), "onnx_sha256": sha(onnx_models["good"])}
    summary["checkpoint_sha256"] = "a" * 64  # exported from the step-5 best.pt of a killed retrain
    training = {"best_checkpoint_sha256": "b" * 64}  # the summary of the finished training
    with pytest.raises(LineageMismatch, match="describe different models") as info:
        verify_lineage(
            summary, training_summary=training, evaluation={"checkpoint_sha256": "b" * 64}
        )
    assert "a" * 64 in str(info.value) and "b" * 64 in str(info.value)
    assert "kedro run --pipelines=export,compression" in str(info.value)
    verify_lineage(summary, training_summary={"best_checkpoint_sha256": "a" * 64})


def test_compression_variant_checked_against_its_row(onnx_models, tmp_path):
    q = tmp_path / "int8_dynamic.onnx"
    shutil.copy(onnx_models["good"], q)
    row = comparison_row("int8_dynamic", str(q), True, onnx_sha256=sha(q))
    export = {"onnx_path": str(onnx_models["good"]), "onnx_sha256": sha(onnx_models["good"])}
    verify_lineage(export, [row])
    shutil.copy(onnx_models["noisy"], q)
    with pytest.raises(LineageMismatch, match=r"variant int8_dynamic\) has sha256"):
        verify_lineage(export, [row])


def test_export_refuses_a_checkpoint_changed_after_training(tmp_path):
    best = tmp_path / "best.pt"
    best.write_bytes(b"finished training")
    summary = {"best_checkpoint": str(best), "best_checkpoint_sha256": sha(best)}
    assert checkpoint_from_summary(summary) == str(best)
    best.write_bytes(b"step 5 of a killed retrain")
    with pytest.raises(ModelingError) as info:
        checkpoint_from_summary(summary)
    assert sha(best) in str(info.value) and summary["best_checkpoint_sha256"] in str(info.value)
    assert "kedro run --pipelines=training" in str(info.value)


def test_compression_does_not_reuse_a_swapped_export(onnx_models, tmp_path):
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"weights")
    onnx = tmp_path / "model_fp32.onnx"
    shutil.copy(onnx_models["good"], onnx)
    summary = {"onnx_path": str(onnx), "checkpoint_sha256": sha(ckpt), "onnx_sha256": sha(onnx)}
    assert reusable_export(str(ckpt), summary) == onnx
    shutil.copy(onnx_models["bad"], onnx)
    assert reusable_export(str(ckpt), summary) is None
