"""Series-level, label-stratified, seeded train/val/test split.

Whole series go to one split (never rows of one series across splits). A provided ``split``
column is respected: its ``test`` and ``val`` series stay; validation is carved from ``train``
only when no series is marked ``val``; it must mark at least one ``train`` and one ``test``
series. Each class keeps at least one training series.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sensorops.timeseries.config import SplitConfig
from sensorops.timeseries.errors import ContractError

logger = logging.getLogger(__name__)


def _carve(
    ids: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> set[str]:
    """Stratified sample of ``fraction`` of ``ids`` (at least one series left per class)."""
    chosen: set[str] = set()
    if fraction <= 0:
        return chosen
    for label in sorted(set(labels.tolist())):
        members = np.sort(ids[labels == label])
        if len(members) < 2:
            continue
        k = min(len(members) - 1, int(np.floor(fraction * len(members) + 0.5)))
        if k > 0:
            chosen.update(rng.choice(members, size=k, replace=False).tolist())
    return chosen


def _require_provided_splits(split: np.ndarray) -> None:
    """A provided ``split`` column must mark train and test series (val may be carved).

    Raises:
        ContractError: no series marked ``train`` or ``test``; names the column, the missing
            split and the per-split series counts.
    """
    counts = {name: int((split == name).sum()) for name in ("train", "val", "test")}
    missing = [name for name in ("train", "test") if counts[name] == 0]
    if missing:
        raise ContractError(
            f"column 'split' marks no {' and no '.join(repr(m) for m in missing)} series "
            f"(series per split: {counts}); a provided split needs at least one 'train' and one "
            "'test' series ('val' is carved from train when absent). Fix the column, or drop it "
            "to let ingestion.split carve train/val/test"
        )


def assign_splits(frame: pd.DataFrame, config: SplitConfig) -> pd.DataFrame:
    """Return a copy of the contract-checked ``frame`` with a ``split`` column per series.

    Args:
        frame: long table (``series_id``, ``label``, optional ``split``); not modified.
        config: fractions and seed; ``val_fraction`` is a fraction of the training series.

    Raises:
        ContractError: a provided ``split`` column has no ``train`` or no ``test`` series.
    """
    per_series = frame.groupby("series_id", sort=True).agg(
        label=("label", "first"), **({"split": ("split", "first")} if "split" in frame else {})
    )
    ids = per_series.index.to_numpy().astype(str)
    labels = per_series["label"].to_numpy().astype(str)
    rng = np.random.default_rng(config.seed)
    if "split" in per_series:
        split = per_series["split"].to_numpy().astype(object)
        provided = True
        _require_provided_splits(split)
    else:
        split = np.full(len(ids), "train", dtype=object)
        test = _carve(ids, labels, config.test_fraction, rng)
        split[np.isin(ids, list(test))] = "test"
        provided = False
    if not (split == "val").any():
        train = split == "train"
        val = _carve(ids[train], labels[train], config.val_fraction, rng)
        split[np.isin(ids, list(val))] = "val"
    mapping = dict(zip(ids, split.astype(str), strict=True))
    out = frame.copy()
    out["split"] = out["series_id"].map(mapping).astype(str)
    counts = pd.Series(split).value_counts().to_dict()
    logger.info("split by series (provided split column: %s): %s", provided, counts)
    return out
