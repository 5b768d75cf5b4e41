"""The training reference of a model version: the served-input summaries of its training series.

The reference holds, per series of the version's data (train, val and test splits), exactly what the service logs per request (the raw
per-channel mean and standard deviation, the DTW alignment cost of the version's own
preprocessing, the predicted class and its probability), computed by running the version's
:class:`~sensorops.registry.pyfunc.SensorModel` over the training split of ``int_sensor_long``.
Window and reference are therefore the same statistic of the same pipeline, and differ only by
the data. One JSON file per version under ``monitoring.reference.dir`` (written atomically).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sensorops.atomic import atomic_write_text
from sensorops.monitoring.errors import ReferenceError_


@dataclass
class Reference:
    """Per-series summaries of a version's training data (see the module docstring)."""

    model: str
    version: str
    channels: list[str]
    classes: list[str]
    input_mean: list[list[float]]
    input_std: list[list[float]]
    alignment_cost: list[float]
    predicted: list[str]
    confidence: list[float]
    labels: list[str]
    test_accuracy: float | None = None
    n_test: int | None = None
    train_digest: str | None = None
    splits: list[str] = field(default_factory=list)
    series_splits: list[str] = field(default_factory=list)
    heldout_splits: list[str] = field(default_factory=lambda: ["val", "test"])
    min_heldout: int = 10

    @property
    def n(self) -> int:
        return len(self.alignment_cost)

    def matrix(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), dtype=np.float64)

    def model_side_mask(self) -> np.ndarray:
        """Series for the model-side signals (alignment cost, confidence, predicted classes).

        The training series built the DTW references and fitted the network, so their costs
        are optimistically low and their predictions overconfident; these signals use the
        held-out splits (``heldout_splits``) when they hold at least ``min_heldout`` series.
        """
        split = np.asarray(self.series_splits or [""] * self.n)
        held = np.isin(split, self.heldout_splits)
        return held if held.sum() >= self.min_heldout else np.ones(self.n, dtype=bool)

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(asdict(self)))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        path = Path(path)
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ReferenceError_(f"{path}: not a monitoring reference file: {exc}") from exc


def reference_path(directory: str | Path, model: str, version: str) -> Path:
    return Path(directory) / f"reference-{model}-v{version}.json"


def training_series(
    frame: pd.DataFrame,
    channels: list[str],
    splits: tuple[str, ...] = ("train", "val", "test"),
    max_series: int = 2000,
    seed: int = 0,
) -> tuple[list[str], list[np.ndarray], list[str], list[str]]:
    """``(ids, (time, channels) arrays, labels, splits)`` of the given splits of a long table."""
    missing = [c for c in ("series_id", "t", "label", "split", *channels) if c not in frame.columns]
    if missing:
        raise ReferenceError_(
            f"int_sensor_long lacks column(s) {missing}; the reference needs series_id, t, label, "
            f"split and the model's channels {channels}"
        )
    sub = frame[frame["split"].isin(list(splits))].sort_values(["series_id", "t"], kind="stable")
    if sub.empty:
        raise ReferenceError_(f"int_sensor_long has no series in splits {list(splits)}")
    groups = list(sub.groupby("series_id", sort=True))
    if len(groups) > max_series:
        pick = np.random.default_rng(seed).choice(len(groups), size=max_series, replace=False)
        groups = [groups[i] for i in sorted(pick)]
    ids = [str(k) for k, _ in groups]
    values = [g[channels].to_numpy(dtype=np.float64) for _, g in groups]
    labels = [str(g["label"].iloc[0]) for _, g in groups]
    series_splits = [str(g["split"].iloc[0]) for _, g in groups]
    return ids, values, labels, series_splits


def build_reference(
    model: Any,
    name: str,
    version: str,
    values: list[np.ndarray],
    labels: list[str],
    tags: dict[str, str] | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
    series_splits: list[str] | None = None,
    batch: int = 64,
) -> Reference:
    """Run ``model`` (a :class:`SensorModel`) over the raw training series; summarise as served."""
    tags = tags or {}
    state = model.state
    means, stds, costs, preds, confs = [], [], [], [], []
    classes = list(state.classes)
    for start in range(0, len(values), batch):
        chunk = values[start : start + batch]
        proba, info = model.predict_proba_series(chunk, field="reference")
        for v, p, i in zip(chunk, proba, info, strict=True):
            means.append(np.nanmean(v, axis=0).tolist())
            stds.append(np.nanstd(v, axis=0).tolist())
            costs.append(float(i["alignment_cost"]))
            preds.append(classes[int(np.argmax(p))])
            confs.append(float(np.max(p)))
    acc = tags.get("metric.test_accuracy")
    n_test = tags.get("metric.n_test")
    return Reference(
        model=name,
        version=str(version),
        channels=list(state.channels),
        classes=classes,
        input_mean=means,
        input_std=stds,
        alignment_cost=costs,
        predicted=preds,
        confidence=confs,
        labels=list(labels),
        test_accuracy=float(acc) if acc not in (None, "", "nan") else None,
        n_test=int(n_test) if n_test not in (None, "") else None,
        train_digest=tags.get("data.train_digest"),
        splits=list(splits),
        series_splits=list(series_splits or []),
    )
