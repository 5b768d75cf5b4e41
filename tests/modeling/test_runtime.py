"""Execution-provider selection and latency measurement on a real ONNX Runtime session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sensorops.modeling import ModelingError
from sensorops.modeling.latency import measure_ort_latency, measure_torch_latency, time_calls
from sensorops.modeling.runtime import create_session, resolve_providers


def test_resolve_providers_intersects_and_keeps_order() -> None:
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["CUDAExecutionProvider"], available) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert resolve_providers(["ROCMExecutionProvider", "CPUExecutionProvider"], available) == [
        "CPUExecutionProvider"
    ]
    with pytest.raises(
        ModelingError,
        match=r"none of the requested execution providers \['ROCMExecutionProvider'\]",
    ):
        resolve_providers(["ROCMExecutionProvider"], available)


def test_provider_recorded_is_what_the_session_runs(exports: dict[str, dict]) -> None:
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    session = create_session(exports["resnet1d"]["onnx_path"], wanted)
    assert session.used == tuple(session.session.get_providers())
    assert session.provider == session.used[0]
    if "CUDAExecutionProvider" not in ort.get_available_providers() or not _cuda_runs():
        # onnxruntime-gpu lists CUDA without a GPU and silently falls back: never report CUDA then
        assert session.provider == "CPUExecutionProvider"


def _cuda_runs() -> bool:
    import torch

    return torch.cuda.is_available()


def test_missing_onnx_file(tmp_path: Path) -> None:
    with pytest.raises(
        ModelingError, match=r"nope.onnx does not exist; run the export pipeline first"
    ):
        create_session(tmp_path / "nope.onnx")


def test_latency_stats_are_consistent(
    exports: dict[str, dict], checkpoints: dict[str, Path]
) -> None:
    from sensorops.architectures import load_checkpoint_model

    X = np.random.default_rng(0).standard_normal((3, 32, 3)).astype(np.float32)
    session = create_session(exports["resnet1d"]["onnx_path"])
    stats = measure_ort_latency(session, X, batch_size=8, n_warmup=1, n_iter=5)
    assert stats.batch_size == 8 and stats.n_iter == 5
    assert 0 < stats.p50_ms <= stats.p99_ms
    assert stats.throughput == pytest.approx(8 / (stats.p50_ms / 1e3))
    model, _, _ = load_checkpoint_model(checkpoints["resnet1d"])
    tstats = measure_torch_latency(model, X, batch_size=2, n_warmup=1, n_iter=3)
    assert 0 < tstats.p50_ms <= tstats.p99_ms


def test_time_calls_counts_every_call() -> None:
    calls = []
    time_calls(lambda: calls.append(1), batch_size=1, n_warmup=2, n_iter=7)
    assert len(calls) == 9
