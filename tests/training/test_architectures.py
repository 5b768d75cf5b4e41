"""Architectures: shapes, initialization, spec validation, checkpoint loading, ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sensorops.architectures import (
    ARCHITECTURES,
    CheckpointError,
    ModelSpec,
    build_model,
    load_checkpoint_model,
)
from sensorops.training.checkpoint import save_checkpoint


def small_spec(name: str) -> ModelSpec:
    return ModelSpec(
        name, n_channels=3, n_classes=4, length=40, hidden=16, layers=2, dropout=0.1, heads=2
    )


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_logits_shape_for_any_batch_and_length(name: str) -> None:
    model = build_model(small_spec(name)).eval()
    for batch, length in ((1, 40), (5, 17), (3, 90)):
        out = model(torch.randn(batch, length, 3))
        assert out.shape == (batch, 4)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_initialization_kaiming_for_conv_xavier_for_linear_and_lstm() -> None:
    torch.manual_seed(0)
    cnn = build_model(ModelSpec("resnet1d", 3, 4, 40, hidden=64, layers=1))
    conv = next(m for m in cnn.modules() if isinstance(m, nn.Conv1d) and m.in_channels == 64)
    fan_out = conv.out_channels * conv.kernel_size[0]
    assert conv.weight.std().item() == pytest.approx(
        np.sqrt(2.0 / fan_out), rel=0.1
    )  # kaiming, fan_out
    head = cnn.head
    bound = np.sqrt(6.0 / (head.in_features + head.out_features))
    assert head.weight.abs().max().item() <= bound + 1e-6  # xavier uniform
    assert head.bias.abs().max().item() == 0.0
    lstm = build_model(ModelSpec("lstm_attention", 3, 4, 40, hidden=32, layers=1)).lstm
    w = lstm.weight_hh_l0
    assert w.abs().max().item() <= np.sqrt(6.0 / (w.shape[0] + w.shape[1])) + 1e-6
    # PyTorch's default LSTM init is U(-1/sqrt(h), 1/sqrt(h)); xavier for (128, 32) reaches beyond it
    assert w.abs().max().item() > 1 / np.sqrt(32)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "gru"}, "model.name"),
        ({"n_channels": 0}, "model.n_channels"),
        ({"n_classes": 1}, "model.n_classes"),
        ({"dropout": 1.5}, "model.dropout"),
        ({"name": "transformer", "hidden": 30, "heads": 4}, "model.hidden"),
    ],
)
def test_spec_validation_names_the_field(kwargs: dict, field: str) -> None:
    base = {"name": "lstm_attention", "n_channels": 3, "n_classes": 4, "length": 10}
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        ModelSpec(**{**base, **kwargs})


def test_load_checkpoint_model_round_trip(tmp_path: Path) -> None:
    spec = small_spec("transformer")
    model = build_model(spec).eval()
    path = save_checkpoint(
        tmp_path / "best.pt",
        {
            "model_spec": spec.to_dict(),
            "model_state": model.state_dict(),
            "metadata": {"classes": ["a", "b", "c", "d"], "channels": ["x", "y", "z"], "step": 7},
        },
    )
    loaded, loaded_spec, meta = load_checkpoint_model(path)
    assert loaded_spec == spec
    assert meta["step"] == 7 and meta["classes"] == ["a", "b", "c", "d"]
    assert not loaded.training
    x = torch.randn(2, 40, 3)
    torch.testing.assert_close(loaded(x), model(x))


def test_missing_checkpoint_error_names_path_and_command(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt.*kedro run --pipelines=training"):
        load_checkpoint_model(tmp_path / "nope.pt")


def test_checkpoint_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    spec = small_spec("resnet1d")
    path = tmp_path / "evil.pt"
    torch.save(
        {"model_spec": spec, "model_state": {}, "metadata": {}}, path
    )  # a dataclass: needs pickle
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint_model(path)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_onnx_dynamo_export_with_dynamic_batch_and_time(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    model = build_model(small_spec(name)).eval()
    path = tmp_path / f"{name}.onnx"
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    torch.onnx.export(
        model,
        (torch.randn(2, 40, 3),),
        str(path),
        dynamo=True,
        external_data=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: batch, 1: time}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 23, 3)
    got = session.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4)
