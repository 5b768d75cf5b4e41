"""Latency measurement: p50/p99 per call and throughput, for ONNX Runtime and torch eager."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from sensorops.modeling.runtime import OrtSession


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency over ``n_iter`` timed calls at one batch size.

    Attributes:
        batch_size: rows per call.
        p50_ms / p99_ms: median and 99th percentile of the per-call wall time, milliseconds.
        throughput: rows per second at the median latency.
        n_iter: timed calls.
    """

    batch_size: int
    p50_ms: float
    p99_ms: float
    throughput: float
    n_iter: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def time_calls(
    fn: Callable[[], object], batch_size: int, n_warmup: int, n_iter: int
) -> LatencyStats:
    """Call ``fn`` ``n_warmup`` times untimed, then ``n_iter`` times timed with ``perf_counter``."""
    for _ in range(n_warmup):
        fn()
    times = np.empty(n_iter, dtype=np.float64)
    for i in range(n_iter):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    p50 = float(np.percentile(times, 50)) * 1e3
    p99 = float(np.percentile(times, 99)) * 1e3
    return LatencyStats(
        batch_size=batch_size,
        p50_ms=p50,
        p99_ms=p99,
        throughput=batch_size / (p50 / 1e3) if p50 > 0 else float("inf"),
        n_iter=n_iter,
    )


def _batch(X: np.ndarray, batch_size: int) -> np.ndarray:
    """``batch_size`` rows of ``X`` (repeated when ``X`` is shorter)."""
    reps = -(-batch_size // len(X))
    return np.ascontiguousarray(np.concatenate([X] * reps)[:batch_size], dtype=np.float32)


def measure_ort_latency(
    session: OrtSession, X: np.ndarray, batch_size: int, n_warmup: int = 10, n_iter: int = 100
) -> LatencyStats:
    """Latency of ``session.run`` on ``batch_size`` rows of ``X`` ``(n, time, channels)``."""
    x = _batch(X, batch_size)
    return time_calls(lambda: session.run(x), batch_size, n_warmup, n_iter)


def measure_torch_latency(
    model: nn.Module, X: np.ndarray, batch_size: int, n_warmup: int = 10, n_iter: int = 100
) -> LatencyStats:
    """Latency of eager ``model(x)`` under ``torch.inference_mode`` (model put in eval mode)."""
    model.eval()
    x = torch.from_numpy(_batch(X, batch_size))

    def call() -> None:
        with torch.inference_mode():
            model(x)

    return time_calls(call, batch_size, n_warmup, n_iter)
