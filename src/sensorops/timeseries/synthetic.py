"""Seeded synthetic industrial sensor data with the defects ingestion must repair.

Each series is one machine cycle recorded on ``n_channels`` sensors (vibration, temperature,
current, ...). The cycle is a smooth periodic base signal per channel; fault class ``k >= 1``
adds a class-specific local signature (a bump on one channel and a burst of oscillation on
another) at a class-specific phase of the cycle; class 0 is healthy.

Defects, all drawn from one ``numpy.random.Generator(seed)``:

- random time shifts (up to ``max_shift`` of a cycle) and smooth local time warps
  (``warp_strength``), so series of one class are misaligned: alignment matters;
- variable lengths (``length_jitter``) and irregular sampling of ``t`` (step 1, 2 or 5, random
  start), so all lengths and samplings must flow through;
- point spikes (``spike_rate``, ``spike_scale``) and whole anomalous series (stuck sensor,
  gain fault, drift, noise burst; ``anomalous_fraction``): outlier removal matters;
- dropouts: NaN runs (``dropout_rate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sensorops.timeseries.config import SyntheticConfig
from sensorops.timeseries.series import SeriesSet, series_to_long

CHANNEL_NAMES: tuple[str, ...] = (
    "vibration",
    "temperature",
    "current",
    "pressure",
    "acoustic",
    "speed",
    "voltage",
    "torque",
    "flow",
    "humidity",
    "strain",
    "position",
)
ANOMALY_KINDS: tuple[str, ...] = ("stuck", "gain", "drift", "noise")


@dataclass
class SyntheticData:
    """Generated long table plus the ground truth of the injected defects.

    Attributes:
        frame: the long-format table (series_id, t, channels..., label[, split]).
        anomalous: series id -> anomaly kind, for the whole-series anomalies.
        n_spikes: series id -> number of injected spike points.
        classes: class labels in code order.
    """

    frame: pd.DataFrame
    anomalous: dict[str, str] = field(default_factory=dict)
    n_spikes: dict[str, int] = field(default_factory=dict)
    classes: tuple[str, ...] = ()


def channel_names(n_channels: int) -> list[str]:
    """Names for ``n_channels`` channels (cycling through the list with a numeric suffix)."""
    names = []
    for k in range(n_channels):
        base = CHANNEL_NAMES[k % len(CHANNEL_NAMES)]
        names.append(base if k < len(CHANNEL_NAMES) else f"{base}_{k // len(CHANNEL_NAMES)}")
    return names


def _wrapped_gauss(u: np.ndarray, center: float, width: float) -> np.ndarray:
    d = np.abs(((u - center) + 0.5) % 1.0 - 0.5)
    return np.exp(-0.5 * (d / width) ** 2)


def _clean_cycle(u: np.ndarray, label: int, n_classes: int, n_channels: int) -> np.ndarray:
    """Noise-free signal ``(len(u), n_channels)`` at cycle phases ``u`` for class ``label``."""
    out = np.empty((len(u), n_channels))
    for k in range(n_channels):
        out[:, k] = np.sin(2 * np.pi * (u + 0.13 * k)) + 0.4 * np.sin(4 * np.pi * u + 0.7 * k)
    if label > 0:
        center = 0.15 + 0.7 * (label - 1) / max(1, n_classes - 1)
        bump_ch = (label - 1) % n_channels
        out[:, bump_ch] += 2.0 * _wrapped_gauss(u, center, 0.03)
        burst_ch = label % n_channels
        envelope = _wrapped_gauss(u, (center + 0.3) % 1.0, 0.05)
        out[:, burst_ch] += 1.2 * envelope * np.sin(2 * np.pi * 12 * u)
    return out


def _make_anomalous(x: np.ndarray, rng: np.random.Generator) -> str:
    """Turn ``x`` ``(length, n_channels)`` into an anomalous series in place; returns the kind."""
    length, n_ch = x.shape
    kind = ANOMALY_KINDS[int(rng.integers(len(ANOMALY_KINDS)))]
    if kind == "stuck":
        x[:] = rng.uniform(-1.0, 1.0, size=n_ch)
    elif kind == "gain":
        x *= rng.uniform(3.5, 5.0)
    elif kind == "drift":
        x += np.linspace(0.0, rng.choice([-1.0, 1.0]) * 6.0, length)[:, None]
    else:
        x += 2.5 * rng.standard_normal(x.shape)
    return kind


def _drop_runs(x: np.ndarray, rng: np.random.Generator, rate: float) -> None:
    """Blank runs of 1-5 steps per channel (NaN dropouts), ``rate`` of the steps on average."""
    length, n_ch = x.shape
    for k in range(n_ch):
        budget = int(rng.binomial(length, rate))
        while budget > 0:
            run = int(min(budget, rng.integers(1, 6)))
            start = int(rng.integers(1, max(2, length - run - 1)))
            x[start : start + run, k] = np.nan
            budget -= run


def generate_series(
    config: SyntheticConfig,
) -> tuple[SeriesSet, list[np.ndarray], dict[str, str], dict[str, int]]:
    """The generated series as arrays (no DataFrame), for benchmarks and large sizes.

    Returns:
        ``(series, steps, anomalous, n_spikes)``: a :class:`SeriesSet` (float64 values with NaN
        dropouts; ``splits`` are "test"/"train" if ``test_fraction > 0`` else ""), the ``t`` values
        per series, and the ground truth of the injected defects.
    """
    rng = np.random.default_rng(config.seed)
    n, n_ch, K = config.n_series, config.n_channels, config.n_classes
    classes = ("healthy", *[f"fault_{k}" for k in range(1, K)])
    codes = rng.permutation(np.arange(n) % K)
    offsets = rng.uniform(-5.0, 50.0, size=n_ch)
    scales = rng.uniform(0.5, 5.0, size=n_ch)
    n_anom = int(round(config.anomalous_fraction * n))
    anomalous_idx = set(rng.choice(n, size=n_anom, replace=False).tolist()) if n_anom else set()
    test_mask = rng.random(n) < config.test_fraction

    values: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    anomalous: dict[str, str] = {}
    n_spikes: dict[str, int] = {}
    ids = [f"m{i:05d}" for i in range(n)]
    for i, sid in enumerate(ids):
        length = int(round(config.length * (1.0 + rng.uniform(-1, 1) * config.length_jitter)))
        length = max(8, length)
        tau = np.linspace(0.0, 1.0, length, endpoint=False)
        shift = rng.uniform(-config.max_shift, config.max_shift)
        m = int(rng.integers(1, 3))
        a = config.warp_strength * rng.uniform(0.3, 1.0)
        phase = (
            tau
            + shift
            + a / (2 * np.pi * m) * np.sin(2 * np.pi * m * tau + rng.uniform(0, 2 * np.pi))
        )
        x = _clean_cycle(phase, int(codes[i]), K, n_ch)
        x += config.noise * rng.standard_normal(x.shape)
        if i in anomalous_idx:
            anomalous[sid] = _make_anomalous(x, rng)
        spikes = rng.random(x.shape) < config.spike_rate
        n_spikes[sid] = int(spikes.sum())
        x[spikes] += (
            rng.choice([-1.0, 1.0], size=int(spikes.sum()))
            * config.spike_scale
            * rng.uniform(0.7, 1.3, size=int(spikes.sum()))
        )
        x = x * scales + offsets
        if config.dropout_rate > 0:
            _drop_runs(x, rng, config.dropout_rate)
        step = int(rng.choice([1, 2, 5]))
        steps.append(int(rng.integers(0, 1000)) + step * np.arange(length, dtype=np.int64))
        values.append(x)
    splits = np.where(test_mask, "test", "train") if config.test_fraction > 0 else np.full(n, "")
    series = SeriesSet(
        ids=np.asarray(ids),
        labels=np.asarray(classes)[codes],
        splits=np.asarray(splits).astype(str),
        values=values,
        channels=tuple(channel_names(n_ch)),
    )
    return series, steps, anomalous, n_spikes


def generate_industrial(config: SyntheticConfig) -> SyntheticData:
    """Generate the seeded synthetic dataset described in the module docstring.

    Returns:
        :class:`SyntheticData`; ``frame`` has ``config.n_series`` series, labels ``healthy`` and
        ``fault_1..fault_{K-1}`` balanced, and a ``split`` column only if ``test_fraction > 0``.
    """
    series, steps, anomalous, n_spikes = generate_series(config)
    frame = series_to_long(series, include_split=config.test_fraction > 0)
    frame["t"] = np.concatenate(steps)
    classes = ("healthy", *[f"fault_{k}" for k in range(1, config.n_classes)])
    return SyntheticData(frame=frame, anomalous=anomalous, n_spikes=n_spikes, classes=classes)
