"""Simulated served traffic, clean or drifted, for tests, demos and the detection-delay study.

Traffic is drawn like the synthetic industrial generator draws its data
(:mod:`sensorops.timeseries.synthetic`), with the **sensor calibration of the training data**
(the per-channel offsets and scales the generator's seed fixes) but fresh series from
``traffic_seed``: clean traffic is new data from the training distribution.

Drift modes (:class:`DriftSpec`), applied to raw ``(time, channels)`` series of any source:

- ``stuck``: one channel reads a constant (its value at the start of the series);
- ``gain``: one channel multiplied by ``gain`` and shifted by ``offset`` standard deviations of
  the channel (a swapped or recalibrated sensor);
- ``new_class``: a fault the model never saw (a slow ramp plus a high-frequency burst on two
  channels), labelled ``new_class_label``;
- ``covariate``: a slow shift of one channel's level that grows linearly from 0 at
  ``onset`` (share of the traffic) to ``shift`` channel standard deviations at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sensorops.timeseries.config import SyntheticConfig
from sensorops.timeseries.synthetic import _clean_cycle, _drop_runs, channel_names

DriftMode = Literal["none", "stuck", "gain", "new_class", "covariate"]
DRIFT_MODES: tuple[str, ...] = ("stuck", "gain", "new_class", "covariate")


@dataclass(frozen=True)
class DriftSpec:
    """One drift mode and its size (see the module docstring)."""

    mode: DriftMode = "none"
    channel: int = 0
    gain: float = 1.5
    offset: float = 1.0
    shift: float = 2.0
    onset: float = 0.0
    share: float = 1.0  # new_class: share of the traffic that is the new fault
    new_class_label: str = "fault_new"


@dataclass
class Traffic:
    """Raw series ``(time, channels)``, their true labels, and the channel names."""

    values: list[np.ndarray]
    labels: list[str]
    channels: tuple[str, ...]


def _calibration(config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel offsets and scales the generator's seed gives (same draws, same order)."""
    rng = np.random.default_rng(config.seed)
    rng.permutation(np.arange(config.n_series) % config.n_classes)
    offsets = rng.uniform(-5.0, 50.0, size=config.n_channels)
    scales = rng.uniform(0.5, 5.0, size=config.n_channels)
    return offsets, scales


def synthetic_traffic(config: SyntheticConfig, n: int, traffic_seed: int) -> Traffic:
    """``n`` fresh series with the training calibration of ``config`` (no whole-series anomalies)."""
    rng = np.random.default_rng(traffic_seed)
    offsets, scales = _calibration(config)
    K, C = config.n_classes, config.n_channels
    classes = ("healthy", *[f"fault_{k}" for k in range(1, K)])
    values, labels = [], []
    for _ in range(n):
        code = int(rng.integers(K))
        length = max(
            8, int(round(config.length * (1.0 + rng.uniform(-1, 1) * config.length_jitter)))
        )
        tau = np.linspace(0.0, 1.0, length, endpoint=False)
        m = int(rng.integers(1, 3))
        a = config.warp_strength * rng.uniform(0.3, 1.0)
        phase = (
            tau
            + rng.uniform(-config.max_shift, config.max_shift)
            + a / (2 * np.pi * m) * np.sin(2 * np.pi * m * tau + rng.uniform(0, 2 * np.pi))
        )
        x = _clean_cycle(phase, code, K, C) + config.noise * rng.standard_normal((length, C))
        spikes = rng.random(x.shape) < config.spike_rate
        x[spikes] += rng.choice([-1.0, 1.0], size=int(spikes.sum())) * config.spike_scale
        x = x * scales + offsets
        if config.dropout_rate > 0:
            _drop_runs(x, rng, config.dropout_rate)
        values.append(x)
        labels.append(classes[code])
    return Traffic(values, labels, tuple(channel_names(C)))


def _channel_scale(values: list[np.ndarray], k: int) -> float:
    pooled = np.concatenate([v[:, k] for v in values])
    s = float(np.nanstd(pooled))
    return s if s > 0 else 1.0


def apply_drift(traffic: Traffic, spec: DriftSpec, seed: int = 0) -> Traffic:
    """A drifted copy of ``traffic`` (the input is not modified)."""
    if spec.mode == "none":
        return Traffic([v.copy() for v in traffic.values], list(traffic.labels), traffic.channels)
    rng = np.random.default_rng(seed)
    n_ch = traffic.values[0].shape[1]
    if not 0 <= spec.channel < n_ch:
        raise ValueError(f"drift channel must be in [0, {n_ch}); got {spec.channel}")
    k = spec.channel
    scale = _channel_scale(traffic.values, k)
    values, labels = [], list(traffic.labels)
    n = len(traffic.values)
    for i, v in enumerate(traffic.values):
        x = v.copy()
        if spec.mode == "stuck":
            first = x[np.isfinite(x[:, k]), k]
            x[:, k] = first[0] if len(first) else 0.0
        elif spec.mode == "gain":
            mu = float(np.nanmean(x[:, k]))
            x[:, k] = mu + spec.gain * (x[:, k] - mu) + spec.offset * scale
        elif spec.mode == "covariate":
            progress = i / max(1, n - 1)
            level = 0.0 if progress < spec.onset else (progress - spec.onset) / (1 - spec.onset)
            x[:, k] = x[:, k] + spec.shift * scale * level
        elif spec.mode == "new_class":
            if rng.random() < spec.share:
                u = np.linspace(0.0, 1.0, len(x), endpoint=False)
                other = (k + 1) % n_ch
                x[:, k] = x[:, k] + 1.5 * scale * u
                x[:, other] = x[:, other] + 1.0 * _channel_scale(traffic.values, other) * np.sin(
                    2 * np.pi * 20 * u
                )
                labels[i] = spec.new_class_label
        else:
            raise ValueError(f"unknown drift mode {spec.mode!r}; expected one of {DRIFT_MODES}")
        values.append(x)
    return Traffic(values, labels, traffic.channels)


def log_records(
    model: object,
    traffic: Traffic,
    *,
    name: str,
    version: str,
    alias: str,
    start: np.datetime64,
    step_s: float = 1.0,
    request_prefix: str = "sim",
    with_raw_input: bool = False,
    batch: int = 64,
) -> list[dict[str, object]]:
    """Prediction-log records for ``traffic`` scored by ``model`` (a SensorModel), one per series.

    The fields are those the service writes (:mod:`sensorops.serving.prediction_log`), from the
    same preprocessing and ONNX session; ``latency_ms`` is the measured scoring time per batch.
    ``with_raw_input`` adds the ``input_values`` column.
    """
    import time as _time

    state = model.state  # type: ignore[attr-defined]
    classes = list(state.classes)
    out: list[dict[str, object]] = []
    for s in range(0, len(traffic.values), batch):
        chunk = traffic.values[s : s + batch]
        t0 = _time.perf_counter()
        proba, info = model.predict_proba_series(chunk)  # type: ignore[attr-defined]
        ms = 1000.0 * (_time.perf_counter() - t0) / max(1, len(chunk))
        for j, (v, p, inf) in enumerate(zip(chunk, proba, info, strict=True)):
            i = s + j
            rec: dict[str, object] = {
                "request_id": f"{request_prefix}-{i:06d}",
                "series_index": 0,
                "time": start + np.timedelta64(int(i * step_s * 1e6), "us"),
                "endpoint": "predict",
                "model": name,
                "version": str(version),
                "alias": alias,
                "n_steps": int(inf["length"]),
                "nans_filled": int(inf["nans_filled"]),
                "points_repaired": int(inf["points_repaired"]),
                "reference": inf["reference"],
                "alignment_cost": float(inf["alignment_cost"]),
                "input_mean": np.nanmean(v, axis=0).tolist(),
                "input_std": np.nanstd(v, axis=0).tolist(),
                "predicted": classes[int(np.argmax(p))],
                "probabilities": p.tolist(),
                "classes": classes,
                "latency_ms": ms,
            }
            if with_raw_input:
                rec["input_values"] = [
                    [None if np.isnan(x) else float(x) for x in row] for row in v
                ]
            out.append(rec)
    return out


def feedback_records(
    records: list[dict[str, object]], labels: list[str]
) -> list[dict[str, object]]:
    """Feedback-log rows (``request_id``, ``series_index``, ``label``, ``time``) for ``records``."""
    return [
        {
            "request_id": r["request_id"],
            "series_index": r["series_index"],
            "label": lab,
            "time": r["time"],
        }
        for r, lab in zip(records, labels, strict=True)
    ]
