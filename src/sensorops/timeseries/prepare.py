"""The ingestion steps after the split, as plain functions shared by the Kedro nodes and the ablation.

``clean`` (outliers) -> ``align`` (DTW to fixed length) -> ``normalize`` (train statistics).
Every fitted object is fitted on the ``train`` split only.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from sensorops.model_input import SPLITS, ModelInput
from sensorops.timeseries.alignment import SeriesAligner, resample_all
from sensorops.timeseries.config import AlignmentConfig, OutlierConfig
from sensorops.timeseries.normalize import ChannelStandardizer
from sensorops.timeseries.outliers import OutlierFilter, OutlierResult, fill_only
from sensorops.timeseries.series import SeriesSet, long_to_series

logger = logging.getLogger(__name__)


def clean(frame: pd.DataFrame, config: OutlierConfig) -> tuple[OutlierResult, OutlierFilter | None]:
    """Repair NaNs/spikes and handle outlier series of a split long table.

    Args:
        frame: contract-checked long table with a ``split`` column; not modified.
        config: outlier settings; ``enabled: false`` only interpolates NaN dropouts.

    Returns:
        ``(result, fitted_filter_or_None)``.
    """
    series = long_to_series(frame)
    if not config.enabled:
        return fill_only(series), None
    train = series.split("train")
    filt = OutlierFilter(config).fit(train)
    return filt.transform(series), filt


def align(
    series: SeriesSet, config: AlignmentConfig, classes: tuple[str, ...] | None = None
) -> tuple[ModelInput, SeriesAligner | None, pd.DataFrame]:
    """Align every series to a common length (DTW, or linear resampling when disabled).

    Args:
        series: NaN-free series with splits.
        config: alignment settings.
        classes: class names in code order (default: sorted labels of ``series``).

    Returns:
        ``(model_input_unnormalized, fitted_aligner_or_None, costs)`` where ``costs`` has one row
        per series: series_id, split, label, reference, cost.
    """
    classes = classes or tuple(sorted(set(series.labels.tolist())))
    code = {c: k for k, c in enumerate(classes)}
    train = series.split("train")
    X_all: np.ndarray
    if config.enabled:
        aligner = SeriesAligner(config).fit(train)
        res = aligner.transform(series)
        X_all, costs, refs = res.X, res.costs, res.reference
        metadata: dict[str, Any] = {
            "alignment": {
                "method": "dtw",
                "reference_scope": config.reference.scope,
                "reference_method": config.reference.method,
                "reference_length": aligner.ref_length_,
                "reference_choice": "min_cost"
                if config.reference.scope == "per_class"
                else "global",
                "dtw_window": config.dtw.window,
                "sakoe_chiba_radius": aligner.band_.radius
                if aligner.band_.window == "sakoe_chiba"
                else None,
                "itakura_max_slope": config.dtw.itakura_max_slope
                if config.dtw.window == "itakura"
                else None,
                "references": {
                    name: ref.tolist()
                    for name, ref in zip(aligner.reference_names_, aligner.references_, strict=True)
                },
            }
        }
    else:
        aligner = None
        length = config.reference.length or int(np.median(train.lengths))
        X_all = resample_all(series.values, length)
        costs = np.full(len(series), np.nan)
        refs = np.full(len(series), "", dtype=object)
        metadata = {"alignment": {"method": "linear_resample", "reference_length": length}}
    cost_table = pd.DataFrame(
        {
            "series_id": series.ids,
            "split": series.splits,
            "label": series.labels,
            "reference": refs,
            "cost": costs,
        }
    )
    X, y, ids = {}, {}, {}
    n_ch = len(series.channels)
    length = X_all.shape[1] if X_all.ndim == 3 else 0
    for split in SPLITS:
        mask = series.splits == split
        X[split] = (
            X_all[mask].astype(np.float32)
            if mask.any()
            else np.empty((0, length, n_ch), np.float32)
        )
        y[split] = np.array([code[lab] for lab in series.labels[mask]], dtype=np.int64)
        ids[split] = series.ids[mask].astype(str)
    mi = ModelInput(
        X=X, y=y, series_ids=ids, classes=classes, channels=series.channels, metadata=metadata
    )
    return mi, aligner, cost_table


def normalize(mi: ModelInput, eps: float = 1e-8) -> tuple[ModelInput, ChannelStandardizer]:
    """Standardise every split per channel with statistics of ``mi.X['train']``."""
    scaler = ChannelStandardizer(eps).fit(mi.X["train"])
    metadata = dict(mi.metadata)
    metadata["normalization"] = {
        "kind": "standard",
        "fitted_on": "train",
        **{"channels": scaler.to_dict(mi.channels)},
    }
    out = ModelInput(
        X={s: scaler.transform(mi.X[s]) for s in SPLITS},
        y=dict(mi.y),
        series_ids=dict(mi.series_ids),
        classes=mi.classes,
        channels=mi.channels,
        metadata=metadata,
    )
    return out, scaler
