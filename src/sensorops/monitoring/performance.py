"""Performance on the labelled part of the window, against the version's offline test figure.

Accuracy, macro-F1 and the confusion matrix of the labelled records, with the sample size and a
Wilson 95 % interval. The comparison with the registered offline test accuracy (tags
``metric.test_accuracy`` and ``metric.n_test``) is a one-sided Fisher exact test on the two 2x2
counts (correct/wrong, live/offline): it is exact at any sample size and accounts for the
offline figure being a sample too (a 1.000 on 40 test series is not a promise of 1.000).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score

from sensorops.monitoring.config import PerformanceConfig


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


@dataclass
class PerformanceResult:
    """What the labelled records say (``tested`` False: too few labels, or no offline figure)."""

    n_labelled: int
    accuracy: float | None = None
    macro_f1: float | None = None
    ci95: tuple[float, float] | None = None
    classes: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    unknown_labels: dict[str, int] = field(default_factory=dict)
    offline_accuracy: float | None = None
    offline_n: int | None = None
    p_value: float | None = None
    drop_points: float | None = None
    significant_drop: bool = False
    tested: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def assess(
    labels: list[str],
    predicted: list[str],
    classes: list[str],
    offline_accuracy: float | None,
    offline_n: int | None,
    config: PerformanceConfig,
) -> PerformanceResult:
    """Score the labelled records; test for a drop below the offline accuracy."""
    n = len(labels)
    unknown: dict[str, int] = {}
    for lab in labels:
        if lab not in classes:
            unknown[lab] = unknown.get(lab, 0) + 1
    res = PerformanceResult(
        n_labelled=n,
        classes=list(classes),
        unknown_labels=unknown,
        offline_accuracy=offline_accuracy,
        offline_n=offline_n,
    )
    if n == 0:
        res.note = "no labelled records in the window"
        return res
    y, p = np.asarray(labels, dtype=object), np.asarray(predicted, dtype=object)
    correct = int((y == p).sum())
    res.accuracy = correct / n
    res.ci95 = wilson(correct, n)
    all_classes = list(classes) + sorted(unknown)
    res.classes = all_classes
    res.macro_f1 = float(
        f1_score(y, p, labels=sorted(set(y) | set(p)), average="macro", zero_division=0)
    )
    res.confusion = confusion_matrix(y, p, labels=all_classes).astype(int).tolist()
    if n < config.min_labelled:
        res.note = f"only {n} labelled record(s) (< performance.min_labelled={config.min_labelled})"
        return res
    if offline_accuracy is None or not offline_n:
        res.note = "the version has no offline test accuracy (metric.test_accuracy, metric.n_test)"
        return res
    off_correct = int(round(offline_accuracy * offline_n))
    table = [[correct, n - correct], [off_correct, offline_n - off_correct]]
    res.p_value = float(stats.fisher_exact(table, alternative="less").pvalue)
    res.drop_points = 100.0 * (offline_accuracy - res.accuracy)
    res.significant_drop = res.p_value < config.alpha
    res.tested = True
    return res
