"""The ablation on data built to need outlier removal and alignment: each must help."""

from __future__ import annotations

import numpy as np

from sensorops.timeseries.ablation import one_nn_accuracy, run_ablation
from sensorops.timeseries.config import AblationConfig


def test_one_nn_accuracy() -> None:
    X_train = np.array([[[0.0]], [[10.0]]])
    y_train = np.array([0, 1])
    assert (
        one_nn_accuracy(
            X_train, y_train, np.array([[[1.0]], [[9.0]], [[2.0]]]), np.array([0, 1, 1])
        )
        == 2 / 3
    )


def test_default_ablation_shows_both_steps_help() -> None:
    result = run_ablation(AblationConfig())
    acc = result["val_accuracy"]
    assert set(acc) == {"none", "outliers_only", "alignment_only", "outliers_and_alignment"}
    assert result["outliers_help"] and result["alignment_helps"], acc
    assert acc["outliers_and_alignment"] == max(acc.values())
    assert result["data"]["n_anomalous_series"] == 12
