"""Test-split evaluation of the best checkpoint, next to a 1-nearest-neighbour DTW baseline.

Scores: accuracy, macro-F1, per-class precision/recall/F1 (all higher is better), one-vs-rest
ROC-AUC from softmax probabilities (``None`` when a class is absent from the test split), and
the confusion matrix (rows = true class, columns = predicted class).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from sensorops.architectures import load_checkpoint_model
from sensorops.config_validation import StrictBool, StrictInt, parse
from sensorops.metrics import confusion_matrix, scores_from_confusion
from sensorops.model_input import ModelInput, ModelInputError
from sensorops.training.config import ConfigError, section

logger = logging.getLogger(__name__)


@section
class EvaluationConfig:
    """The ``training.evaluation`` parameters."""

    batch_size: StrictInt = Field(256, ge=1)
    """Inference batch for the model."""
    dtw_baseline: StrictBool = True
    """Compute the 1-NN DTW (tslearn) baseline on the same train/test arrays."""
    dtw_sakoe_chiba_radius: StrictInt | None = Field(None, ge=1)
    """Sakoe-Chiba band radius in steps for the baseline; null = unconstrained DTW."""
    dtw_max_train_series: StrictInt | None = Field(500, ge=1)
    """Cap on reference series for the baseline (stratified, seeded subsample); null = all."""
    seed: StrictInt = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EvaluationConfig:
        return parse("training.evaluation", cls, data, error=ConfigError)


@dataclass
class EvaluationResult:
    """Everything evaluation produces."""

    report: dict[str, Any]
    """JSON report: model scores, baseline scores, their difference, provenance."""
    predictions: pd.DataFrame
    """One row per test series: series_id, true, predicted, baseline_predicted, proba_<class>..."""
    per_class: pd.DataFrame
    """One row per (method, class): precision, recall, f1, support."""
    confusion_figure: Any
    """matplotlib Figure with the model's (and baseline's) confusion matrices."""


@torch.no_grad()
def predict_proba(model: nn.Module, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(n_series, n_classes)`` for ``X`` ``(n_series, length, n_channels)``."""
    model.eval()
    out = []
    for start in range(0, len(X), batch_size):
        logits = model(
            torch.from_numpy(np.ascontiguousarray(X[start : start + batch_size], dtype=np.float32))
        )
        out.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def classification_scores(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: tuple[str, ...],
    proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix, ROC-AUC (OvR).

    Accuracy and macro-F1 come from :mod:`sensorops.metrics` (macro over all ``len(classes)``
    classes, so a class absent from the test split and never predicted counts 0); the per-class
    parts are scikit-learn's.
    """
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, len(classes))
    scores: dict[str, Any] = {
        **scores_from_confusion(cm),  # accuracy, macro_f1: the shared definition
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "n_series": len(y_true),
    }
    if proba is not None:
        try:
            scores["roc_auc_ovr"] = float(
                roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)
            )
        except ValueError as exc:  # a class missing from y_true
            logger.warning("ROC-AUC (one-vs-rest) undefined on this test split: %s", exc)
            scores["roc_auc_ovr"] = None
    return scores


def _stratified_subset(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    idx = np.arange(len(y))
    if limit is None or len(y) <= limit:
        return idx
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for code in np.unique(y):
        members = idx[y == code]
        n = max(1, round(limit * len(members) / len(y)))
        keep.append(rng.choice(members, size=min(n, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def dtw_1nn_predict(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, cfg: EvaluationConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    """1-nearest-neighbour DTW (tslearn) predictions for ``X_test``; also returns run facts."""
    from tslearn.neighbors import KNeighborsTimeSeriesClassifier

    subset = _stratified_subset(y_train, cfg.dtw_max_train_series, cfg.seed)
    params = (
        {"sakoe_chiba_radius": cfg.dtw_sakoe_chiba_radius} if cfg.dtw_sakoe_chiba_radius else None
    )
    clf = KNeighborsTimeSeriesClassifier(n_neighbors=1, metric="dtw", metric_params=params)
    t0 = time.perf_counter()
    clf.fit(X_train[subset].astype(np.float64), y_train[subset])
    pred = clf.predict(X_test.astype(np.float64))
    facts = {
        "method": "1-NN DTW (tslearn KNeighborsTimeSeriesClassifier)",
        "sakoe_chiba_radius": cfg.dtw_sakoe_chiba_radius,
        "n_reference_series": len(subset),
        "seconds": time.perf_counter() - t0,
    }
    return np.asarray(pred, dtype=np.int64), facts


def plot_confusion(matrices: dict[str, np.ndarray], classes: tuple[str, ...]) -> Any:
    """A figure with one annotated confusion-matrix panel per method (rows true, columns predicted)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = len(matrices)
    size = max(3.5, 0.6 * len(classes) + 2)
    fig = Figure(figsize=(size * n, size), dpi=100)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, cm) in zip(axes, matrices.items(), strict=True):
        cm = np.asarray(cm)
        ax.imshow(cm, cmap="Blues")
        ax.set_title(title)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        top = cm.max() if cm.size else 0
        for (i, j), v in np.ndenumerate(cm):
            ax.text(
                j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black"
            )
    fig.tight_layout()
    return fig


def evaluate_checkpoint(
    checkpoint: str | Path, mi: ModelInput, cfg: EvaluationConfig | None = None
) -> EvaluationResult:
    """Evaluate a checkpoint on the test split of ``mi`` (and the DTW baseline on the same arrays).

    Raises:
        CheckpointError: missing/unreadable checkpoint (names the path and the command to make it).
        ModelInputError: the checkpoint's classes or channels differ from the model input's.
    """
    cfg = cfg or EvaluationConfig()
    model, spec, meta = load_checkpoint_model(checkpoint)
    for key, have in (("classes", list(mi.classes)), ("channels", list(mi.channels))):
        if key in meta and list(meta[key]) != have:
            raise ModelInputError(
                f"checkpoint {checkpoint} was trained on {key} {list(meta[key])} but the model input has {have}; "
                f"re-run `kedro run --pipelines=training`"
            )
    X, y = mi.X["test"], mi.y["test"]
    proba = predict_proba(model, X, cfg.batch_size)
    pred = proba.argmax(axis=1).astype(np.int64)
    model_scores = classification_scores(y, pred, mi.classes, proba)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "checkpoint_step": meta.get("step"),
        "model_name": spec.name,
        "classes": list(mi.classes),
        "split": "test",
        "n_test": len(y),
        "accuracy": model_scores["accuracy"],
        "macro_f1": model_scores["macro_f1"],
        "roc_auc_ovr": model_scores["roc_auc_ovr"],
        "per_class": model_scores["per_class"],
        "confusion_matrix": model_scores["confusion_matrix"],
    }
    predictions = pd.DataFrame(
        {
            "series_id": np.asarray(mi.series_ids["test"]).astype(str),
            "true": [mi.classes[i] for i in y],
            "predicted": [mi.classes[i] for i in pred],
        }
    )
    for k, name in enumerate(mi.classes):
        predictions[f"proba_{name}"] = proba[:, k].astype(np.float64)
    matrices = {
        f"{spec.name} (acc {model_scores['accuracy']:.3f})": np.asarray(
            model_scores["confusion_matrix"]
        )
    }
    rows = [{"method": spec.name, "class": c, **v} for c, v in model_scores["per_class"].items()]
    if cfg.dtw_baseline:
        base_pred, facts = dtw_1nn_predict(mi.X["train"], mi.y["train"], X, cfg)
        base = classification_scores(y, base_pred, mi.classes)
        report["baseline_1nn_dtw"] = {
            **facts,
            **{k: base[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix")},
        }
        report["delta_vs_baseline"] = {
            "accuracy": model_scores["accuracy"] - base["accuracy"],
            "macro_f1": model_scores["macro_f1"] - base["macro_f1"],
        }
        predictions["baseline_predicted"] = [mi.classes[i] for i in base_pred]
        matrices[f"1-NN DTW (acc {base['accuracy']:.3f})"] = np.asarray(base["confusion_matrix"])
        rows += [{"method": "1nn_dtw", "class": c, **v} for c, v in base["per_class"].items()]
    else:
        report["baseline_1nn_dtw"] = None
    return EvaluationResult(
        report, predictions, pd.DataFrame(rows), plot_confusion(matrices, mi.classes)
    )


def evaluation_metrics(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Scalar scores in kedro-mlflow's ``MlflowMetricsHistoryDataset`` format (``{name: {value, step}}``)."""
    out: dict[str, float | None] = {
        "test_accuracy": report["accuracy"],
        "test_macro_f1": report["macro_f1"],
        "test_roc_auc_ovr": report.get("roc_auc_ovr"),
    }
    for name, scores in report["per_class"].items():
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
        out[f"test_precision_{name}"] = scores["precision"]
        out[f"test_recall_{name}"] = scores["recall"]
    base = report.get("baseline_1nn_dtw")
    if base:
        out["baseline_dtw_accuracy"] = base["accuracy"]
        out["baseline_dtw_macro_f1"] = base["macro_f1"]
    return {k: {"value": float(v), "step": 0} for k, v in out.items() if v is not None}
