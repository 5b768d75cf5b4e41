"""Small seeded data for the time-series library tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sensorops.timeseries.config import SyntheticConfig
from sensorops.timeseries.synthetic import SyntheticData, generate_industrial


def sine_table(n_per_class: int = 6, length: int = 30, seed: int = 0) -> pd.DataFrame:
    """Two classes of 2-channel sine waves (different frequencies) as a long table."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, freq in (("slow", 1.0), ("fast", 3.0)):
        for i in range(n_per_class):
            t = np.arange(length)
            phase = rng.uniform(0, 0.5)
            a = np.sin(2 * np.pi * freq * t / length + phase) + 0.05 * rng.standard_normal(length)
            b = np.cos(2 * np.pi * freq * t / length + phase) + 0.05 * rng.standard_normal(length)
            rows.append(
                pd.DataFrame(
                    {"series_id": f"{label}_{i}", "t": t, "ch_a": a, "ch_b": b, "label": label}
                )
            )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture
def sines() -> pd.DataFrame:
    return sine_table()


@pytest.fixture(scope="session")
def small_synthetic() -> SyntheticData:
    """120 series x 3 channels x ~48 steps with every defect."""
    return generate_industrial(
        SyntheticConfig(
            n_series=120, n_channels=3, length=48, spike_rate=0.02, anomalous_fraction=0.1, seed=3
        )
    )
