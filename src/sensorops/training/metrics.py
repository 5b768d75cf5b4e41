"""Validation scores from an all-reduced confusion matrix.

A thin name over :mod:`sensorops.metrics`, the one definition of accuracy and macro-F1 (macro
over **all** classes) shared with evaluation, compression and the registry gates.
"""

from __future__ import annotations

import numpy as np

from sensorops.metrics import scores_from_confusion


def metrics_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}`` (in [0, 1], higher is better) of a ``(n_classes, n_classes)``
    confusion matrix (rows true, columns predicted); macro-F1 counts every class, present or not."""
    return scores_from_confusion(cm)
