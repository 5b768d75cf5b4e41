"""Ablation on synthetic data: does outlier handling help, does DTW alignment help?

A fixed light classifier (1-nearest-neighbour, Euclidean distance on the flattened normalized
series) is trained on the train split and scored on the validation split, for the four
combinations of outlier handling (on/off) and alignment (on/off). "Off" still interpolates NaN
dropouts and resamples linearly to the reference length, the minimum needed to get arrays.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from sensorops.timeseries.config import AblationConfig, ContractConfig
from sensorops.timeseries.contract import check_contract
from sensorops.timeseries.prepare import align, clean, normalize
from sensorops.timeseries.split import assign_splits
from sensorops.timeseries.synthetic import generate_industrial

logger = logging.getLogger(__name__)

VARIANTS: tuple[tuple[str, bool, bool], ...] = (
    ("none", False, False),
    ("outliers_only", True, False),
    ("alignment_only", False, True),
    ("outliers_and_alignment", True, True),
)


def one_nn_accuracy(
    X_train: np.ndarray, y_train: np.ndarray, X_eval: np.ndarray, y_eval: np.ndarray
) -> float:
    """Accuracy of 1-NN (Euclidean on flattened ``(n, length, channels)`` arrays)."""
    if len(X_eval) == 0:
        return float("nan")
    a = X_train.reshape(len(X_train), -1).astype(np.float64)
    b = X_eval.reshape(len(X_eval), -1).astype(np.float64)
    d2 = (b**2).sum(1)[:, None] - 2.0 * b @ a.T + (a**2).sum(1)[None, :]
    pred = y_train[np.argmin(d2, axis=1)]
    return float((pred == y_eval).mean())


def run_ablation(config: AblationConfig) -> dict[str, Any]:
    """Validation accuracy of the fixed classifier for the four variants.

    Returns:
        ``{"classifier", "data", "val_accuracy": {variant: acc}, "gain_from_outliers",
        "gain_from_alignment", "outliers_help", "alignment_helps"}``; the gains compare the full
        pipeline against dropping one step.
    """
    data = generate_industrial(config.synthetic)
    frame = check_contract(data.frame, ContractConfig(), "synthetic ablation data")
    frame = assign_splits(frame, config.split)
    classes = tuple(sorted(frame["label"].unique().tolist()))
    accuracy: dict[str, float] = {}
    cleaned = {}
    for use_outliers in (False, True):
        cleaned[use_outliers], _ = clean(
            frame, config.outliers.model_copy(update={"enabled": use_outliers})
        )
    for name, use_outliers, use_alignment in VARIANTS:
        mi, _, _ = align(
            cleaned[use_outliers].series,
            config.alignment.model_copy(update={"enabled": use_alignment}),
            classes,
        )
        mi, _ = normalize(mi)
        accuracy[name] = one_nn_accuracy(mi.X["train"], mi.y["train"], mi.X["val"], mi.y["val"])
        logger.info("ablation %s: val accuracy %.3f", name, accuracy[name])
    full = accuracy["outliers_and_alignment"]
    result = {
        "classifier": "1-NN, Euclidean on flattened normalized series",
        "data": {
            **config.synthetic.model_dump(),
            "n_anomalous_series": len(data.anomalous),
            "n_val": int((frame.groupby("series_id")["split"].first() == "val").sum()),
        },
        "val_accuracy": accuracy,
        "gain_from_outliers": full - accuracy["alignment_only"],
        "gain_from_alignment": full - accuracy["outliers_only"],
    }
    result["outliers_help"] = bool(result["gain_from_outliers"] > 0)
    result["alignment_helps"] = bool(result["gain_from_alignment"] > 0)
    return result
