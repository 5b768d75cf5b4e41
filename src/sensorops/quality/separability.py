"""Tier 3 probe: can a light model tell the classes apart from per-channel summary features?"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)


class SeparabilityProbe:
    """Cross-validated logistic regression on per-series summary features.

    ``fit(features, labels)`` estimates how separable the classes are; higher scores are better.
    Chance level of balanced accuracy is ``1 / n_classes`` whatever the class balance.

    Args:
        cv_folds: folds of the stratified cross-validation (reduced to the smallest class size).
        max_series: at most this many series are used (a seeded random subset).
        seed: seed of the subset and of the fold shuffling.
    """

    def __init__(self, cv_folds: int = 5, max_series: int = 5000, seed: int = 0) -> None:
        self.cv_folds = cv_folds
        self.max_series = max_series
        self.seed = seed

    def fit(self, features: np.ndarray, labels: Sequence[str]) -> SeparabilityProbe:
        """Cross-validate the probe.

        Args:
            features: float array ``(n_series, n_features)``; NaN is imputed with the column mean
                (0 where a whole column is missing).
            labels: class name of each series, length ``n_series``.

        Sets:
            ``balanced_accuracy_`` (float in [0, 1]), ``chance_`` (1 / n_classes),
            ``recall_`` (class -> recall), ``n_series_`` (series used), ``folds_`` (folds used),
            ``note_`` (why the score is 0 when the probe could not run, else ``""``).
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import balanced_accuracy_score, recall_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.asarray(features, dtype="float64")
        y = np.asarray([str(v) for v in labels], dtype=object)
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(
                f"features must be (n_series, n_features) matching {len(y)} labels; got shape {x.shape}"
            )
        rng = np.random.default_rng(self.seed)
        if len(y) > self.max_series:
            idx = np.sort(rng.choice(len(y), size=self.max_series, replace=False))
            x, y = x[idx], y[idx]
        classes, counts = np.unique(y, return_counts=True)
        self.classes_ = tuple(str(c) for c in classes)
        self.chance_ = 1.0 / len(classes) if len(classes) else 1.0
        self.n_series_ = len(y)
        self.recall_ = {c: 0.0 for c in self.classes_}
        self.balanced_accuracy_ = 0.0
        self.folds_ = int(min(self.cv_folds, counts.min())) if len(counts) else 0
        self.note_ = ""
        if len(classes) < 2:
            self.note_ = (
                f"needs at least 2 classes in the training split; found {list(self.classes_)}"
            )
        elif self.folds_ < 2:
            small = [c for c, k in zip(self.classes_, counts, strict=True) if k < 2]
            self.note_ = f"needs at least 2 series per class for cross-validation; classes {small} have fewer"
        if self.note_:
            logger.warning("separability probe not run: %s", self.note_)
            return self

        col_mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
        col_mean = np.nan_to_num(col_mean, nan=0.0)
        x = np.where(np.isfinite(x), x, col_mean)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        cv = StratifiedKFold(n_splits=self.folds_, shuffle=True, random_state=self.seed)
        pred = cross_val_predict(model, x, y, cv=cv)
        self.balanced_accuracy_ = float(balanced_accuracy_score(y, pred))
        recalls = recall_score(y, pred, labels=list(self.classes_), average=None, zero_division=0)
        self.recall_ = {c: float(r) for c, r in zip(self.classes_, recalls, strict=True)}
        logger.info(
            "separability probe: balanced accuracy %.3f (chance %.3f) on %d series, %d folds",
            self.balanced_accuracy_,
            self.chance_,
            self.n_series_,
            self.folds_,
        )
        return self
