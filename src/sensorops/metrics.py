"""The one definition of the classification scores used everywhere (training, evaluation,
compression gates, registry gates), so that a gate and a report never disagree.

Both scores are in [0, 1], higher is better. Macro-F1 averages over **all** ``n_classes`` classes,
present in the data or not (scikit-learn's ``f1_score(average="macro", labels=range(n_classes),
zero_division=0)``), so a class the model never predicts and the test split lacks still counts 0.
numpy only: cheap enough for the CLI and for all-reduced confusion matrices.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts; rows are true classes, columns predictions."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    for name, codes in (("y_true", y_true), ("y_pred", y_pred)):
        if codes.size and (codes.min() < 0 or codes.max() >= n_classes):
            raise ValueError(f"{name} has class codes outside [0, {n_classes})")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}`` from a confusion matrix (macro over every class)."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = support + predicted
        f1 = np.where(denom > 0, 2.0 * tp / denom, 0.0)
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
    }


def classification_scores(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> dict[str, float]:
    """Accuracy and macro-F1 of predicted codes ``y_pred`` ``(n,)`` against ``y_true`` ``(n,)``."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes))


def scores_from_logits(y_true: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 of ``argmax(logits)``; ``logits`` is ``(n, n_classes)``."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or len(logits) != len(y_true):
        raise ValueError(
            f"logits must be (n, n_classes) matching y (n,); got {logits.shape} and {np.shape(y_true)}"
        )
    return classification_scores(y_true, logits.argmax(axis=1), logits.shape[1])


def as_mlflow_metrics(
    values: dict[str, float | int | None], step: int = 0
) -> dict[str, dict[str, float | int]]:
    """``{name: {"value": float, "step": step}}`` for every value that is not ``None``.

    The one spelling of the input of kedro-mlflow's ``MlflowMetricsHistoryDataset``, used by
    every node and contract that reports metrics.
    """
    return {k: {"value": float(v), "step": step} for k, v in values.items() if v is not None}
