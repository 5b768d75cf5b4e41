"""Classification scores and model-size facts shared by export, compression and the benchmark."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sensorops import metrics as shared_metrics
from sensorops.modeling.errors import ModelingError


def classification_scores(
    y_true: np.ndarray, logits: np.ndarray, n_classes: int
) -> dict[str, float]:
    """Accuracy and macro-F1 (both in [0, 1], higher is better) of ``argmax(logits)``.

    Args:
        y_true: int ``(n,)`` class codes.
        logits: ``(n, n_classes)``.
        n_classes: number of classes (macro-F1 averages over all of them, present or not).

    The scores are :func:`sensorops.metrics.classification_scores`, the one definition shared with
    training and the registry gates.
    """
    if logits.ndim != 2 or len(logits) != len(y_true):
        raise ModelingError(
            f"logits must be (n, n_classes) matching y (n,); got {logits.shape} and {y_true.shape}"
        )
    return shared_metrics.classification_scores(y_true, logits.argmax(axis=1), n_classes)


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


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            h.update(chunk)
    return h.hexdigest()
