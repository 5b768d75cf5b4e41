"""ONNX export + parity on every architecture, and broken exports being caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from sensorops.architectures import ARCHITECTURES, CheckpointError, load_checkpoint_model
from sensorops.model_input import ModelInput
from sensorops.modeling import (
    ExportConfig,
    ExportError,
    ModelingError,
    ParityError,
    export_checkpoint,
)
from sensorops.modeling.onnx_export import export_onnx
from sensorops.modeling.parity import check_parity
from sensorops.modeling.runtime import create_session


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_export_passes_checker_and_parity(
    arch: str, exports: dict[str, dict], model_input: ModelInput
) -> None:
    summary = exports[arch]
    path = Path(summary["onnx_path"])
    assert path.is_file() and not Path(str(path) + ".data").exists()  # weights embedded
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert summary["opset"] == 20 == {o.domain: o.version for o in proto.opset_import}[""]
    assert summary["model_name"] == arch
    assert summary["parity_passed"] is True
    assert summary["parity_max_abs_diff"] <= 1e-4
    assert summary["parity_pred_mismatches"] == 0
    assert set(summary["parity_max_abs_diff_by_batch"]) == {"1", "7"}
    # the provider is what the session reports, not what was asked for
    assert summary["execution_provider"] == "CPUExecutionProvider"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_param == "time" and dims[2].dim_value == 3


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_dynamic_batch_and_time_axes_run(
    arch: str, exports: dict[str, dict], checkpoints: dict[str, Path]
) -> None:
    model, _, _ = load_checkpoint_model(checkpoints[arch])
    session = create_session(exports[arch]["onnx_path"])
    x = (
        np.random.default_rng(1).standard_normal((5, 45, 3)).astype(np.float32)
    )  # other batch AND length
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(session.run(x) - ref)) <= 1e-4


def test_perturbed_weight_is_caught(
    exports: dict[str, dict], checkpoints: dict[str, Path], model_input: ModelInput
) -> None:
    model, _, _ = load_checkpoint_model(checkpoints["resnet1d"])
    session = create_session(exports["resnet1d"]["onnx_path"])
    X = model_input.X["test"]
    assert check_parity(model, session, X, [1, 8]).passed
    with torch.no_grad():
        model.head.weight[0, 0] += 0.5  # torch model no longer matches the exported file
    report = check_parity(model, session, X, [1, 8])
    assert not report.passed and report.worst_abs_diff > 1e-4
    with pytest.raises(ParityError, match=r"max \|torch - ORT\|.*tolerance 0.0001"):
        report.raise_if_failed("resnet1d")


def test_too_tight_tolerance_fails_the_export(
    checkpoints: dict[str, Path], model_input: ModelInput, tmp_path: Path
) -> None:
    config = ExportConfig(output_dir=str(tmp_path), parity={"atol": 1e-12, "batch_sizes": [1, 4]})
    with pytest.raises(ParityError, match="tolerance 1e-12"):
        export_checkpoint(str(checkpoints["resnet1d"]), model_input, config)


def test_missing_checkpoint_is_a_clear_error(model_input: ModelInput, tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"does not exist; produce it with `kedro run --pipelines=training`"
    ):
        export_checkpoint(
            str(tmp_path / "nope.pt"), model_input, ExportConfig(output_dir=str(tmp_path))
        )


def test_unsupported_opset_is_rejected(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    model, _, _ = load_checkpoint_model(checkpoints["resnet1d"])
    with pytest.raises(ExportError, match=r"opset must be one of \[18, .*got 11"):
        export_onnx(model, torch.zeros(2, 8, 3), tmp_path / "m.onnx", opset=11)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_example_shape_is_rejected(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    model, _, _ = load_checkpoint_model(checkpoints["resnet1d"])
    with pytest.raises(ExportError, match=r"batch >= 2, time, channels"):
        export_onnx(model, torch.zeros(1, 8, 3), tmp_path / "m.onnx")


def test_model_input_that_does_not_fit_the_checkpoint(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    from tests.modeling.helpers import make_model_input

    mi = make_model_input()
    narrow = ModelInput(
        X={k: v[:, :, :2] for k, v in mi.X.items()},
        y=mi.y,
        series_ids=mi.series_ids,
        classes=mi.classes,
        channels=("a", "b"),
    )
    with pytest.raises(
        ModelingError, match=r"expects 3 channels and 3 classes, but mi_model_input has 2 channels"
    ):
        export_checkpoint(
            str(checkpoints["resnet1d"]), narrow, ExportConfig(output_dir=str(tmp_path))
        )
