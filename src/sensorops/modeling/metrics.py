"""Classification scores and model-size facts shared by export, compression and the benchmark."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from sensorops.modeling.errors import ModelingError


def classification_scores(
    y_true: np.ndarray, logits: np.ndarray, n_classes: int
) -> dict[str, float]:
    """Accuracy and macro-F1 (both in [0, 1], higher is better) of ``argmax(logits)``.

    Args:
        y_true: int ``(n,)`` class codes.
        logits: ``(n, n_classes)``.
        n_classes: number of classes (macro-F1 averages over all of them, present or not).
    """
    if logits.ndim != 2 or len(logits) != len(y_true):
        raise ModelingError(
            f"logits must be (n, n_classes) matching y (n,); got {logits.shape} and {y_true.shape}"
        )
    pred = logits.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(
            f1_score(y_true, pred, average="macro", labels=list(range(n_classes)), zero_division=0)
        ),
    }


def count_params(model: nn.Module) -> int:
    """Total number of parameter values."""
    return int(sum(p.numel() for p in model.parameters()))


def weight_sparsity(model: nn.Module) -> float:
    """Share of exact zeros among the weight matrices (parameters with ``ndim >= 2``)."""
    total = zeros = 0
    for p in model.parameters():
        if p.ndim >= 2:
            total += p.numel()
            zeros += int((p.detach() == 0).sum())
    return zeros / total if total else 0.0


def state_dict_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())``."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def file_size(path: str | os.PathLike[str]) -> int:
    return Path(path).stat().st_size
