"""Tiny seeded test data and tiny trained checkpoints (shared by the modeling and pipeline tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sensorops.architectures import ModelSpec, build_model
from sensorops.model_input import ModelInput
from sensorops.modeling.config import FinetuneConfig
from sensorops.modeling.finetune import finetune

N_CHANNELS = 3
LENGTH = 32
CLASSES = ("slow", "medium", "fast")
EPOCHS = {"lstm_attention": 10, "resnet1d": 15, "transformer": 5, "gat": 10}


def make_model_input(seed: int = 0, n_per_class: dict[str, int] | None = None) -> ModelInput:
    """Sine waves whose frequency depends on the class, with phase/amplitude jitter and noise."""
    n_per_class = n_per_class or {"train": 20, "val": 5, "test": 10}
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH, dtype=np.float32) / LENGTH
    X, y, ids = {}, {}, {}
    for split, n in n_per_class.items():
        xs, ys = [], []
        for k in range(len(CLASSES)):
            freq = 1.0 + 2.0 * k
            for _ in range(n):
                phase = rng.uniform(0, 2 * np.pi, size=N_CHANNELS)
                amp = rng.uniform(0.8, 1.2, size=N_CHANNELS)
                series = amp * np.sin(2 * np.pi * freq * t[:, None] + phase)
                xs.append(series + 0.1 * rng.standard_normal((LENGTH, N_CHANNELS)))
                ys.append(k)
        order = rng.permutation(len(ys))
        X[split] = np.asarray(xs, dtype=np.float32)[order]
        y[split] = np.asarray(ys, dtype=np.int64)[order]
        ids[split] = np.asarray([f"{split}_{i}" for i in range(len(ys))])
    return ModelInput(
        X=X, y=y, series_ids=ids, classes=CLASSES, channels=("a", "b", "c"), metadata={}
    )


def train_checkpoint(name: str, mi: ModelInput, path: Path, epochs: int | None = None) -> Path:
    """Train a tiny model of architecture ``name`` and save it in the training checkpoint format."""
    epochs = epochs if epochs is not None else EPOCHS[name]
    torch.manual_seed(0)
    spec = ModelSpec(
        name, N_CHANNELS, len(CLASSES), LENGTH, hidden=8, layers=1, dropout=0.0, heads=2
    )
    model = build_model(spec)
    finetune(
        model, mi.X["train"], mi.y["train"], FinetuneConfig(epochs=epochs, lr=1e-2, batch_size=16)
    )
    torch.save(
        {
            "format_version": 1,
            "model_spec": spec.to_dict(),
            "model_state": model.state_dict(),
            "metadata": {
                "classes": list(CLASSES),
                "channels": list(mi.channels),
                "step": 1,
                "epoch": epochs,
            },
        },
        path,
    )
    return path
