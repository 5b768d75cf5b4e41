"""Test-split evaluation of the best checkpoint, next to 1-nearest-neighbour DTW baselines.

Baselines (all scored on the same test series as the model, in the same run):

- ``baseline_textbook_1nn_dtw``: the textbook method. ``tslearn``'s
  ``KNeighborsTimeSeriesClassifier(n_neighbors=1, metric="dtw")`` (dependent DTW, full window)
  fitted on the FULL training split (train + validation series) of the contract data as loaded,
  before our outlier handling, alignment and normalization. On BasicMotions with the archive's
  split this scores 0.975, the UEA archive's published figure for dependent DTW.
- ``baseline_textbook_1nn_dtw_sakoe_chiba``: the same with a Sakoe-Chiba band of
  ``baseline_band_fraction`` x the longer series' length (the constraint the alignment uses).
- ``baseline_1nn_dtw`` (kept for continuity, named "preprocessed"): 1-NN DTW on the aligned,
  normalized model-input arrays, with the training split only (validation excluded).

Budget for large data: above ``baseline_tslearn_max_cells`` DTW cells the textbook rows are
computed with the project's own numba kernel (:func:`dtw_cdist`, distance-exact with tslearn in
float64), and ``baseline_max_references`` caps the references with a stratified, seeded sample;
the report states the engine, the cap and the sampling.

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
from numba import njit, prange
from pydantic import Field
from torch import nn

from sensorops.architectures import load_checkpoint_model
from sensorops.config_validation import StrictBool, StrictFloat, StrictInt, parse
from sensorops.metrics import confusion_matrix, scores_from_confusion
from sensorops.model_input import ModelInput, ModelInputError
from sensorops.timeseries.series import long_to_series
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
    textbook_baseline: StrictBool = True
    """Also score the textbook 1-NN DTW on the contract data (train + val references, as loaded)."""
    baseline_band_fraction: StrictFloat | None = Field(0.1, gt=0.0, le=1.0)
    """Sakoe-Chiba radius of the band variant, as a fraction of the longer series; null = no row."""
    baseline_max_references: StrictInt | None = Field(None, ge=1)
    """Cap on textbook reference series (stratified by class, seeded with ``seed``); null = all."""
    baseline_tslearn_max_cells: StrictFloat = Field(2.0e9, ge=0.0)
    """Above this many DTW cells (test x references x length^2) use the project's numba kernel."""
    baseline_tslearn_max_pairs: StrictInt = Field(20000, ge=0)
    """... or above this many (test, reference) pairs: tslearn pays ~0.15 ms of Python per pair."""

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


# -- the textbook baseline on the contract data ------------------------------------------------


@njit(cache=True, nogil=True)
def _dtw_distance(a, b, radius, prev, cur):  # pragma: no cover - numba
    """Dependent DTW distance (sqrt of the summed squared Euclidean cell costs), tslearn's band.

    ``a`` ``(n, C)``, ``b`` ``(m, C)``; ``radius < 0`` = full window. Row ``i`` may use columns
    ``[max(0, i - width), min(m, i + radius + 1))`` with tslearn's ``sakoe_chiba_mask`` widths.
    """
    n, m, c = a.shape[0], b.shape[0], a.shape[1]
    inf = np.inf
    for j in range(m + 1):
        prev[j] = inf
    prev[0] = 0.0
    for i in range(n):
        if radius < 0:
            lo, hi = 0, m
        elif n <= m:
            lo, hi = max(0, i - radius), min(m, i + (m - n + radius) + 1)
        else:
            lo, hi = max(0, i - (n - m + radius)), min(m, i + radius + 1)
        for j in range(m + 1):
            cur[j] = inf
        for j in range(lo, hi):
            d = 0.0
            for k in range(c):
                diff = a[i, k] - b[j, k]
                d += diff * diff
            best = prev[j]  # up
            if prev[j + 1] < best:
                best = prev[j + 1]
            if cur[j] < best:
                best = cur[j]
            cur[j + 1] = d + best
        # the cell (0, 0) starts from 0 only once
        prev[0] = inf
        for j in range(m + 1):
            prev[j] = cur[j]
    return np.sqrt(prev[m])


@njit(parallel=True, cache=True)
def _dtw_cdist(A, la, B, lb, radius):  # pragma: no cover - numba
    na, nb = A.shape[0], B.shape[0]
    out = np.empty((na, nb))
    width = B.shape[1] + 1
    for p in prange(na):
        prev = np.empty(width)
        cur = np.empty(width)
        for q in range(nb):
            out[p, q] = _dtw_distance(A[p, : la[p]], B[q, : lb[q]], radius, prev, cur)
    return out


def dtw_cdist(
    queries: list[np.ndarray], references: list[np.ndarray], radius_fraction: float | None = None
) -> np.ndarray:
    """Pairwise dependent-DTW distances ``(n_queries, n_references)`` (the project's numba kernel).

    Equal to ``tslearn.metrics.cdist_dtw`` in float64 (same recursion and Sakoe-Chiba mask).
    Args:
        queries, references: lists of ``(length_i, n_channels)`` arrays (lengths may differ).
        radius_fraction: Sakoe-Chiba radius as a fraction of the longer series of each pair
            (tslearn's ``sakoe_chiba_radius`` is one integer: here ``ceil(f * max length)``);
            ``None`` = full window.
    """
    A, la = to_padded_f64(queries)
    B, lb = to_padded_f64(references)
    radius = -1
    if radius_fraction is not None:
        radius = int(np.ceil(radius_fraction * max(int(la.max()), int(lb.max()))))
    return _dtw_cdist(A, la, B, lb, radius)


def to_padded_f64(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    out = np.zeros((len(values), int(lengths.max()), values[0].shape[1]), dtype=np.float64)
    for i, v in enumerate(values):
        out[i, : len(v)] = v
    return out, lengths


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """Linear interpolation of NaNs along time per channel (edges take the nearest value)."""
    if not np.isnan(values).any():
        return values
    out = values.copy()
    t = np.arange(len(out))
    for k in range(out.shape[1]):
        col = out[:, k]
        ok = ~np.isnan(col)
        out[:, k] = np.interp(t, t[ok], col[ok]) if ok.any() else 0.0
    return out


@dataclass(frozen=True)
class TextbookData:
    """The contract data, split for the textbook baseline.

    ``references``/``queries`` are lists of ``(length_i, n_channels)`` float64 arrays as loaded
    (NaN gaps linearly interpolated); ``y_*`` are class codes of ``classes``.
    """

    references: list[np.ndarray]
    y_references: np.ndarray
    queries: list[np.ndarray]
    y_queries: np.ndarray
    sampling: str


def textbook_data(contract: pd.DataFrame, mi: ModelInput, cfg: EvaluationConfig) -> TextbookData:
    """References = every train and val series of the contract table; queries = the model's test
    series, in the model input's order.

    Raises:
        ModelInputError: a test series of the model input is absent from the contract table, or a
            label is not one of the model's classes.
    """
    channels = list(mi.channels)
    missing = [c for c in channels if c not in contract.columns]
    if missing:
        raise ModelInputError(
            f"the contract table (int_sensor_long) lacks channel column(s) {missing} of the model "
            f"input; its columns are {list(contract.columns)}"
        )
    series = long_to_series(contract, channels)
    codes = {name: i for i, name in enumerate(mi.classes)}
    unknown = sorted(set(series.labels.tolist()) - set(codes))
    if unknown:
        raise ModelInputError(
            f"the contract table has label(s) {unknown} that the model does not know; "
            f"model classes are {list(mi.classes)}"
        )
    by_id = {sid: i for i, sid in enumerate(series.ids.tolist())}
    test_ids = [str(s) for s in np.asarray(mi.series_ids["test"])]
    absent = [s for s in test_ids if s not in by_id]
    if absent:
        raise ModelInputError(
            f"test series {absent[:5]} of the model input are absent from the contract table "
            "(int_sensor_long); re-run `kedro run --pipelines=ingestion`"
        )
    ref_idx = np.flatnonzero(np.isin(series.splits, ["train", "val"]))
    y_ref = np.array([codes[label] for label in series.labels[ref_idx]], dtype=np.int64)
    keep = _stratified_subset(y_ref, cfg.baseline_max_references, cfg.seed)
    sampling = (
        "all train+val series"
        if len(keep) == len(ref_idx)
        else f"stratified by class, seeded ({cfg.seed}), {len(keep)} of {len(ref_idx)} series"
    )
    ref_idx = ref_idx[keep]
    q_idx = [by_id[s] for s in test_ids]
    return TextbookData(
        references=[_fill_gaps(series.values[i]) for i in ref_idx],
        y_references=y_ref[keep],
        queries=[_fill_gaps(series.values[i]) for i in q_idx],
        y_queries=np.array([codes[series.labels[i]] for i in q_idx], dtype=np.int64),
        sampling=sampling,
    )


def textbook_1nn_dtw(
    data: TextbookData, band_fraction: float | None, cfg: EvaluationConfig, engine: str = "auto"
) -> tuple[np.ndarray, dict[str, Any]]:
    """1-NN dependent DTW on the contract data: predictions for ``data.queries`` and run facts.

    ``engine``: ``tslearn`` (``KNeighborsTimeSeriesClassifier``, the textbook implementation),
    ``numba`` (:func:`dtw_cdist`, distance-exact), or ``auto`` (tslearn up to
    ``cfg.baseline_tslearn_max_cells`` DTW cells and ``cfg.baseline_tslearn_max_pairs`` pairs,
    else numba).
    """
    lengths_r = np.array([len(v) for v in data.references])
    lengths_q = np.array([len(v) for v in data.queries])
    cells = float(lengths_q.sum()) * float(lengths_r.sum())
    if band_fraction is not None:
        cells *= min(1.0, 2 * band_fraction)
    pairs = len(data.queries) * len(data.references)
    if engine == "auto":
        small = cells <= cfg.baseline_tslearn_max_cells and pairs <= cfg.baseline_tslearn_max_pairs
        engine = "tslearn" if small else "numba"
    t0 = time.perf_counter()
    radius = None
    if band_fraction is not None:
        radius = int(np.ceil(band_fraction * max(int(lengths_r.max()), int(lengths_q.max()))))
    if engine == "tslearn":
        from tslearn.neighbors import KNeighborsTimeSeriesClassifier
        from tslearn.utils import to_time_series_dataset

        params = {"sakoe_chiba_radius": radius} if radius is not None else None
        clf = KNeighborsTimeSeriesClassifier(n_neighbors=1, metric="dtw", metric_params=params)
        clf.fit(to_time_series_dataset(data.references), data.y_references)
        pred = np.asarray(clf.predict(to_time_series_dataset(data.queries)), dtype=np.int64)
    elif engine == "numba":
        dist = dtw_cdist(data.queries, data.references, band_fraction)
        pred = data.y_references[dist.argmin(axis=1)]
    else:
        raise ConfigError(f"engine must be one of ['auto', 'tslearn', 'numba']; got {engine!r}")
    facts = {
        "method": (
            "1-NN dependent DTW on the contract data as loaded (train+val references), "
            + ("full window" if radius is None else f"Sakoe-Chiba radius {radius}")
        ),
        "engine": (
            "tslearn KNeighborsTimeSeriesClassifier(n_neighbors=1, metric='dtw')"
            if engine == "tslearn"
            else "sensorops numba dtw_cdist (float64, tslearn-exact distances)"
        ),
        "sakoe_chiba_radius": radius,
        "n_reference_series": len(data.references),
        "reference_sampling": data.sampling,
        "dtw_cells": cells,
        "seconds": time.perf_counter() - t0,
    }
    return pred, facts


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
    checkpoint: str | Path,
    mi: ModelInput,
    cfg: EvaluationConfig | None = None,
    contract: pd.DataFrame | None = None,
) -> EvaluationResult:
    """Evaluate a checkpoint on the test split of ``mi``, next to the 1-NN DTW baselines.

    Args:
        checkpoint: ``best.pt`` of a training run.
        mi: the model input (test split for the model; train split for the preprocessed baseline).
        cfg: evaluation parameters.
        contract: the contract-checked long table with its ``split`` column (``int_sensor_long``):
            with it (and ``cfg.textbook_baseline``) the textbook baselines are scored on the same
            test series, and ``delta_vs_baseline`` compares the model with the textbook row.

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
            "baseline": "baseline_1nn_dtw",
            "accuracy": model_scores["accuracy"] - base["accuracy"],
            "macro_f1": model_scores["macro_f1"] - base["macro_f1"],
        }
        predictions["baseline_predicted"] = [mi.classes[i] for i in base_pred]
        matrices[f"1-NN DTW (acc {base['accuracy']:.3f})"] = np.asarray(base["confusion_matrix"])
        report["baseline_1nn_dtw"]["method"] = (
            "1-NN DTW on the preprocessed model input (aligned, normalized; train split only)"
        )
        rows += [{"method": "1nn_dtw", "class": c, **v} for c, v in base["per_class"].items()]
    else:
        report["baseline_1nn_dtw"] = None
    if contract is not None and cfg.textbook_baseline:
        data = textbook_data(contract, mi, cfg)
        if not np.array_equal(data.y_queries, y):
            raise ModelInputError(
                "the labels of the test series differ between the contract table and the model "
                "input; re-run `kedro run --pipelines=ingestion`"
            )
        variants = [("baseline_textbook_1nn_dtw", "1nn_dtw_textbook", None)]
        if cfg.baseline_band_fraction is not None:
            variants.append(
                (
                    "baseline_textbook_1nn_dtw_sakoe_chiba",
                    "1nn_dtw_textbook_sakoe_chiba",
                    cfg.baseline_band_fraction,
                )
            )
        for key, method, band in variants:
            tb_pred, facts = textbook_1nn_dtw(data, band, cfg)
            tb = classification_scores(y, tb_pred, mi.classes)
            report[key] = {
                **facts,
                **{k: tb[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix")},
            }
            predictions[f"{method}_predicted"] = [mi.classes[i] for i in tb_pred]
            rows += [{"method": method, "class": c, **v} for c, v in tb["per_class"].items()]
            label = "1-NN DTW textbook" + (" (band)" if band else "")
            matrices[f"{label} (acc {tb['accuracy']:.3f})"] = np.asarray(tb["confusion_matrix"])
        textbook = report["baseline_textbook_1nn_dtw"]
        report["delta_vs_baseline"] = {
            "baseline": "baseline_textbook_1nn_dtw",
            "accuracy": model_scores["accuracy"] - textbook["accuracy"],
            "macro_f1": model_scores["macro_f1"] - textbook["macro_f1"],
        }
    # top-level scalars: registered as eval.baseline_* tags, read by the promotion baseline gate
    headline = report.get("baseline_textbook_1nn_dtw") or report.get("baseline_1nn_dtw")
    if headline:
        report["baseline_accuracy"] = headline["accuracy"]
        report["baseline_macro_f1"] = headline["macro_f1"]
        report["baseline_name"] = (
            "baseline_textbook_1nn_dtw"
            if report.get("baseline_textbook_1nn_dtw")
            else "baseline_1nn_dtw"
        )
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
    for key, name in (
        ("baseline_textbook_1nn_dtw", "baseline_textbook_dtw"),
        ("baseline_textbook_1nn_dtw_sakoe_chiba", "baseline_textbook_dtw_band"),
    ):
        if report.get(key):
            out[f"{name}_accuracy"] = report[key]["accuracy"]
            out[f"{name}_macro_f1"] = report[key]["macro_f1"]
    return {k: {"value": float(v), "step": 0} for k, v in out.items() if v is not None}
