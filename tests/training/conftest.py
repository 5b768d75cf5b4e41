"""Tiny synthetic model input for the training tests: seeded sine waves, one frequency per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sensorops.model_input import ModelInput, save_model_input

CLASSES = ("slow", "medium", "fast")
CHANNELS = ("acc_x", "acc_y", "gyro_z")


def make_model_input(n_per_class: int = 24, length: int = 32, seed: int = 0) -> ModelInput:
    """Three well-separated classes (frequency 1, 2, 4 cycles per series) with noise and random phase.

    Arrays are ``(n_series, length, 3)`` float32; splits are 50/25/25 % of each class.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, length, dtype=np.float64)
    X: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    y: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for code, freq in enumerate((1.0, 2.0, 4.0)):
        for i in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi, size=len(CHANNELS))
            series = np.sin(
                2 * np.pi * freq * t[:, None] + phase[None, :]
            ) + 0.3 * rng.standard_normal((length, len(CHANNELS)))
            split = (
                "train" if i < n_per_class // 2 else ("val" if i < 3 * n_per_class // 4 else "test")
            )
            X[split].append(series.astype(np.float32))
            y[split].append(code)
    return ModelInput(
        X={s: np.stack(v) for s, v in X.items()},
        y={s: np.asarray(v, dtype=np.int64) for s, v in y.items()},
        series_ids={s: np.asarray([f"{s}_{i}" for i in range(len(v))]) for s, v in y.items()},
        classes=CLASSES,
        channels=CHANNELS,
        metadata={"source": "synthetic sines", "normalization": {"kind": "none"}},
    )


@pytest.fixture(scope="session")
def tiny_mi() -> ModelInput:
    return make_model_input()


@pytest.fixture(scope="session")
def tiny_mi_path(tmp_path_factory: pytest.TempPathFactory, tiny_mi: ModelInput) -> Path:
    path = tmp_path_factory.mktemp("mi") / "model_input.npz"
    save_model_input(tiny_mi, path)
    return path


def tiny_config(output_dir: Path, **overrides: object) -> dict:
    """``training.trainer`` params for a tiny, fast run (2 gloo workers, no MLflow unless overridden)."""
    cfg: dict = {
        "model": {"name": "lstm_attention", "hidden": 16, "layers": 1, "dropout": 0.0, "heads": 2},
        "data": {"batch_size": 8, "eval_batch_size": 64},
        "optimizer": {"lr": 0.01},
        "schedule": {"warmup_steps": 3},
        "loop": {"epochs": 6, "early_stopping_patience": None},
        "checkpoint": {"every_n_steps": 5},
        "launch": {
            "nproc_per_node": 2,
            "threads_per_worker": 1,
            "monitor_interval_s": 0.2,
            "process_group_timeout_s": 60.0,
        },
        "mlflow": {"enabled": False, "system_metrics_interval_s": 1.0, "log_every_n_steps": 5},
        "precision": "fp32",
        "seed": 0,
        "progress_bar": "never",
        "output_dir": str(output_dir),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg
