"""The shared scores equal scikit-learn's, with macro-F1 over every class."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from sensorops.metrics import classification_scores, confusion_matrix, scores_from_logits


def test_equal_to_sklearn_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, k = int(rng.integers(1, 12)), int(rng.integers(2, 6))
        y, p = rng.integers(0, k, n), rng.integers(0, k, n)
        scores = classification_scores(y, p, k)
        assert scores["accuracy"] == pytest.approx(accuracy_score(y, p))
        expected = f1_score(y, p, average="macro", labels=list(range(k)), zero_division=0)
        assert scores["macro_f1"] == pytest.approx(expected)


def test_absent_class_counts_as_zero() -> None:
    # 3 classes, class 2 neither in truth nor predicted: macro over all 3 -> (1 + 1 + 0) / 3
    assert classification_scores(np.array([0, 1]), np.array([0, 1]), 3)[
        "macro_f1"
    ] == pytest.approx(2 / 3)


def test_logits_and_bad_codes() -> None:
    logits = np.array([[2.0, 0.1], [0.0, 1.0], [3.0, 0.0]])
    assert scores_from_logits(np.array([0, 1, 1]), logits)["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        confusion_matrix(np.array([0, 2]), np.array([0, 1]), 2)
