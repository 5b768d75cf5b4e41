"""int8 PTQ (static QDQ, dynamic) and 4-bit QAT: ORT loads them and they are smaller."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper

from sensorops.architectures import ModelSpec, build_model
from sensorops.modeling import ModelingError
from sensorops.modeling.onnx_export import export_onnx
from sensorops.modeling.parity import torch_logits
from sensorops.modeling.ptq import quantize_dynamic_int8, quantize_static_int8, sample_calibration
from sensorops.modeling.qat import (
    WeightFakeQuantizer,
    dequantize_per_channel,
    fake_quantize_4bit,
    quantize_onnx_weights_4bit,
    quantize_per_channel_asym,
)
from sensorops.modeling.runtime import create_session


@pytest.fixture(scope="module")
def wide_model() -> torch.nn.Module:
    """A CNN wide enough that the weights (not the graph) dominate the file size."""
    torch.manual_seed(0)
    return build_model(ModelSpec("resnet1d", 3, 3, 32, hidden=48, layers=2)).eval()


@pytest.fixture(scope="module")
def wide_fp32(wide_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wide") / "fp32.onnx"
    export_onnx(wide_model, torch.randn(2, 32, 3), path)
    return path


def _X(n: int = 24) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, 32, 3)).astype(np.float32)


def test_static_qdq_int8_is_smaller_and_runs(wide_fp32: Path, tmp_path: Path) -> None:
    out = quantize_static_int8(
        wide_fp32, tmp_path / "s8.onnx", sample_calibration(_X(), 16), batch_size=8
    )
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [
        i for i in model.graph.initializer if i.data_type == TensorProto.INT8 and len(i.dims) == 3
    ]
    assert int8_weights, "conv weights should be stored as int8"
    # per-channel symmetric weights: one scale per output channel, zero points all 0
    dq = next(
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] == int8_weights[0].name
    )
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert inits[dq.input[1]].shape == (int8_weights[0].dims[0],)
    assert not inits[dq.input[2]].any()
    assert out.stat().st_size < 0.5 * wide_fp32.stat().st_size
    ref = create_session(wide_fp32).predict_logits(_X())
    got = create_session(out).predict_logits(_X())
    assert got.shape == ref.shape and np.max(np.abs(got - ref)) < 0.1 * np.max(np.abs(ref)) + 1e-3


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def test_dynamic_int8_is_smaller_and_predicts_like_fp32(wide_fp32: Path, tmp_path: Path) -> None:
    out = quantize_dynamic_int8(wide_fp32, tmp_path / "d8.onnx")
    assert out.stat().st_size < 0.5 * wide_fp32.stat().st_size
    X = _X(64)
    ref = create_session(wide_fp32).predict_logits(X)
    got = create_session(out).predict_logits(X)
    assert got.shape == ref.shape == (64, 3)
    # int8 weights move the logits a little, never to another scale, and keep the classes
    assert np.max(np.abs(got - ref)) < 0.1 * np.max(np.abs(ref)) + 1e-3
    assert not np.array_equal(got, ref)  # it really is another model
    assert _agreement(got, ref) >= 0.95


def test_dynamic_int8_quantizes_the_lstm_and_keeps_its_predictions(
    exports: dict[str, dict], model_input, tmp_path: Path
) -> None:
    src = exports["lstm_attention"]["onnx_path"]
    out = quantize_dynamic_int8(src, tmp_path / "lstm_d8.onnx")
    assert "DynamicQuantizeLSTM" in {n.op_type for n in onnx.load(str(out)).graph.node}
    X, y = model_input.X["test"], model_input.y["test"]
    ref = create_session(src).predict_logits(X)
    got = create_session(out).predict_logits(X)
    assert got.shape == ref.shape == (len(X), 3)
    assert 0 < np.max(np.abs(got - ref)) < 0.1 * np.max(np.abs(ref)) + 1e-3
    assert _agreement(got, ref) >= 0.9
    fp32_acc = float(np.mean(ref.argmax(1) == y))
    assert float(np.mean(got.argmax(1) == y)) >= fp32_acc - 0.1


def test_calibration_sample_is_seeded_and_bounded() -> None:
    X = _X(10)
    a, b = sample_calibration(X, 4, seed=1), sample_calibration(X, 4, seed=1)
    assert a.shape == (4, 32, 3) and np.array_equal(a, b)
    assert sample_calibration(X, 100).shape == (10, 32, 3)
    with pytest.raises(ModelingError, match="non-empty"):
        sample_calibration(X[:0], 4)


def test_per_channel_asymmetric_4bit_roundtrip() -> None:
    w = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32) + 0.3
    q, scale, zp = quantize_per_channel_asym(w, axis=0)
    assert q.dtype == np.uint8 and q.max() <= 15 and scale.shape == zp.shape == (5,)
    deq = dequantize_per_channel(q, scale, zp, axis=0)
    assert np.all(np.abs(deq - w) <= scale[:, None] / 2 + 1e-6)
    # torch fake quantization lands on the same grid, and re-quantizing it is exact (idempotent)
    fq = fake_quantize_4bit(torch.from_numpy(w)).numpy()
    assert np.allclose(fq, deq, atol=1e-6)
    q2, s2, z2 = quantize_per_channel_asym(fq, axis=0)
    assert np.allclose(dequantize_per_channel(q2, s2, z2, 0), fq, atol=1e-6)
    assert len(np.unique(fq[0])) <= 16


def test_fake_quantizer_restores_latent_weights_and_finalizes(wide_model: torch.nn.Module) -> None:
    model = build_model(ModelSpec("lstm_attention", 3, 3, 32, hidden=8, layers=1))
    fq = WeightFakeQuantizer().fit(model)
    assert "lstm.weight_ih_l0" in fq.names_ and "lstm.bias_ih_l0" not in fq.names_
    before = model.lstm.weight_hh_l0.detach().clone()
    with fq.quantized_forward():
        assert len(torch.unique(model.lstm.weight_hh_l0[0])) <= 16
    assert torch.equal(model.lstm.weight_hh_l0, before)
    fq.finalize()
    assert all(len(torch.unique(p[0])) <= 16 for n, p in model.named_parameters() if p.ndim >= 2)
    with pytest.raises(ModelingError, match="bits must be 4"):
        WeightFakeQuantizer(bits=3).fit(model)


@pytest.mark.parametrize("arch", ["lstm_attention", "transformer", "resnet1d"])
def test_qat_4bit_onnx_stores_uint4_and_runs(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    # hidden 64: the exporter then leaves the LSTM recurrence weights behind an Unsqueeze
    model = build_model(
        ModelSpec(arch, 3, 3, 32, hidden=64 if arch == "lstm_attention" else 32, layers=1, heads=2)
    ).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BatchNorm stats, one negative gamma: the export folds them
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
            bn.running_mean.normal_(generator=gen)
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.weight[0] = -bn.weight[0]
    fq = WeightFakeQuantizer().fit(model)
    fq.finalize()
    n_matrix_values = sum(p.numel() for p in model.parameters() if p.ndim >= 2)
    grid = tmp_path / "grid.onnx"  # fp32 file of the 4-bit-valued weights
    export_onnx(model, torch.randn(2, 32, 3), grid, opset=21)
    report = quantize_onnx_weights_4bit(
        grid, tmp_path / "q4.onnx", weights=fq.weight_arrays(), names=fq.names_
    )
    assert report.kept_fp32 == []
    assert report.n_weights_4bit == n_matrix_values  # every weight matrix is stored in 4 bits
    q4 = onnx.load(str(tmp_path / "q4.onnx"))
    uint4 = [
        i
        for i in q4.graph.initializer
        if i.data_type == TensorProto.UINT4 and i.name.endswith("_uint4")
    ]
    assert len(uint4) == len(report.quantized)
    assert sum(n.op_type == "DequantizeLinear" for n in q4.graph.node) == len(report.quantized)
    w = uint4[0]
    assert len(w.raw_data) == (int(np.prod(w.dims)) + 1) // 2  # packed two per byte
    assert numpy_helper.to_array(w).dtype == ml_dtypes.uint4
    # the 4-bit weights save at least 70% of their fp32 bytes (ideal 87.5% less scales/zero points)
    saved = grid.stat().st_size - (tmp_path / "q4.onnx").stat().st_size
    assert saved > 0.7 * 4 * report.n_weights_4bit
    X = _X()
    assert (
        np.max(
            np.abs(create_session(tmp_path / "q4.onnx").predict_logits(X) - torch_logits(model, X))
        )
        < 0.05
    )


def _matmul_model(path: Path, opset: int) -> None:
    w = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(
        onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)]),
        str(path),
    )


def test_4bit_needs_opset_21_and_grid_weights(tmp_path: Path) -> None:
    _matmul_model(tmp_path / "o20.onnx", 20)
    with pytest.raises(ModelingError, match="needs opset >= 21"):
        quantize_onnx_weights_4bit(tmp_path / "o20.onnx", tmp_path / "x.onnx")
    _matmul_model(tmp_path / "o21.onnx", 21)
    with pytest.raises(ModelingError, match="was the model QAT-finalized"):
        quantize_onnx_weights_4bit(tmp_path / "o21.onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
