"""Training and evaluation scores are the shared definition (macro-F1 over all classes)."""

from __future__ import annotations

import numpy as np
import pytest

import sensorops.training.evaluation as evaluation
from sensorops import metrics as shared
from sensorops.training.metrics import metrics_from_confusion


def test_validation_macro_f1_counts_a_class_absent_from_truth_and_predictions() -> None:
    cm = np.array([[2, 0, 0], [0, 2, 0], [0, 0, 0]])
    scores = metrics_from_confusion(cm)
    assert scores == {"accuracy": 1.0, "macro_f1": pytest.approx(2 / 3)}
    assert scores == shared.scores_from_confusion(cm)


def test_evaluation_takes_accuracy_and_macro_f1_from_the_shared_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[list[int]]] = []
    real = shared.scores_from_confusion

    def spy(cm: np.ndarray) -> dict[str, float]:
        seen.append(np.asarray(cm).tolist())
        return real(cm)

    monkeypatch.setattr(evaluation, "scores_from_confusion", spy)
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    scores = evaluation.classification_scores(y, pred, ("a", "b", "c"))
    assert seen == [[[1, 1, 0], [0, 2, 0], [0, 0, 0]]]
    expected = shared.classification_scores(y, pred, 3)
    assert scores["accuracy"] == expected["accuracy"] == 0.75
    assert scores["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)  # "c" absent: counts 0
    assert scores["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores["confusion_matrix"] == seen[0]
