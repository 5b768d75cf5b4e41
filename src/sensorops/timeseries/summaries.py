"""What ingestion reports about itself: outlier summary, model-input metadata, run summary, metrics.

Library code (no Kedro): the ``ingestion`` pipeline's nodes only call these. Every function
returns new objects and never mutates its inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sensorops.metrics import as_mlflow_metrics
from sensorops.model_input import SPLITS, ModelInput
from sensorops.timeseries.config import OutlierConfig, ReportingConfig, SourceConfig
from sensorops.timeseries.outliers import OutlierFilter, outlier_counts
from sensorops.timeseries.reporting import counts_per_split_class, examples_figure
from sensorops.timeseries.series import long_to_series

SCORE_CONVENTION = "pyod decision_function: higher = more anomalous; outlier if score > threshold"
OUTLIER_METADATA_KEYS: tuple[str, ...] = (
    "enabled",
    "threshold",
    "contamination",
    "train_action",
    "flagged",
    "dropped",
    "score_convention",
)
"""The keys of the outlier summary copied into the model input's metadata."""


def outlier_summary(
    report: pd.DataFrame, cfg: OutlierConfig, filt: OutlierFilter | None
) -> dict[str, Any]:
    """``rpt_outlier_summary``: counts per split and class, threshold, flagged and dropped ids."""
    flagged = {
        s: report.loc[(report["split"] == s) & report["is_outlier"], "series_id"].tolist()
        for s in SPLITS
    }
    return {
        "enabled": cfg.enabled,
        "score_convention": SCORE_CONVENTION,
        "threshold": float(filt.threshold_) if filt is not None else None,
        "contamination": cfg.contamination,
        "train_action": cfg.train_action,
        "counts": outlier_counts(report),
        "flagged": flagged,
        "dropped": report.loc[report["action"] == "dropped", "series_id"].tolist(),
        "points_repaired": int(report["points_repaired"].sum()),
        "nans_filled": int(report["nans_filled"].sum()),
    }


def with_original_steps(clean: pd.DataFrame, original: pd.DataFrame) -> pd.DataFrame:
    """Put the user's own ``t`` (timestamps or steps) back on the repaired table.

    Repair keeps every series' length and order, so the kept series' ``t`` values are the
    original ones in (series_id, t) order; ``series_to_long`` numbers them 0..L-1 instead.
    """
    ordered = original.sort_values(["series_id", "t"], kind="stable")
    steps = {
        str(sid): group.to_numpy() for sid, group in ordered.groupby("series_id", sort=False)["t"]
    }
    parts = []
    for sid, group in clean.groupby("series_id", sort=False)["t"]:
        original_t = steps.get(str(sid))
        if original_t is None or len(original_t) != len(group):
            raise ValueError(
                f"series {sid!r}: outlier handling changed its length ({len(group)} vs "
                f"{0 if original_t is None else len(original_t)} original steps)"
            )
        parts.append(original_t)
    out = clean.copy()
    if parts:
        out["t"] = np.concatenate(parts)
    else:
        out["t"] = original["t"].iloc[:0].to_numpy()
    return out


def with_ingestion_metadata(
    mi: ModelInput, source: SourceConfig, outliers: dict[str, Any]
) -> ModelInput:
    """A copy of ``mi`` whose metadata also records the source, outlier handling and counts."""
    metadata = dict(mi.metadata)
    metadata.update(
        {
            "source": source.model_dump(),
            "source_description": source.describe(),
            "outliers": {k: outliers.get(k) for k in OUTLIER_METADATA_KEYS},
            "outlier_model": "catalog entry mdl_outlier_filter (fitted OutlierFilter, train split only)",
            "counts": mi.counts(),
            "label_encoding": {c: k for k, c in enumerate(mi.classes)},
        }
    )
    return ModelInput(
        X=mi.X,
        y=mi.y,
        series_ids=mi.series_ids,
        classes=mi.classes,
        channels=mi.channels,
        metadata=metadata,
    )


def cost_statistics(costs: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean, median and max alignment cost per split (splits without a finite cost left out)."""
    return {
        s: {
            "mean": float(g["cost"].mean()),
            "median": float(g["cost"].median()),
            "max": float(g["cost"].max()),
        }
        for s, g in costs.groupby("split")
        if g["cost"].notna().any()
    }


def ingestion_summary(
    mi: ModelInput, costs: pd.DataFrame, outliers: dict[str, Any]
) -> dict[str, Any]:
    """``rpt_ingestion_summary``: series per split and class, outliers, alignment costs, shape."""
    counts = counts_per_split_class(
        mi.series_ids, {s: [mi.classes[k] for k in mi.y[s]] for s in SPLITS}
    )
    return {
        "series_per_split_class": counts,
        "outliers": outliers["counts"],
        "alignment_cost": cost_statistics(costs),
        "reference_choice": costs.groupby(["split", "reference"])
        .size()
        .rename("n")
        .reset_index()
        .to_dict("records"),
        "length": mi.length,
        "channels": list(mi.channels),
        "classes": list(mi.classes),
    }


def ingestion_metrics(
    mi: ModelInput, summary: dict[str, Any], outliers: dict[str, Any]
) -> dict[str, dict[str, float | int]]:
    """``rpt_ingestion_metrics``: series, flagged outliers and mean alignment cost per split."""
    values: dict[str, float | int | None] = {}
    cost_stats = summary["alignment_cost"]
    for s in SPLITS:
        values[f"n_series_{s}"] = len(mi.y[s])
        values[f"outliers_flagged_{s}"] = sum(
            v["flagged"] for v in outliers["counts"].get(s, {}).values()
        )
        if s in cost_stats:
            values[f"alignment_cost_mean_{s}"] = cost_stats[s]["mean"]
    values["outliers_dropped"] = len(outliers["dropped"])
    values["points_repaired"] = outliers["points_repaired"]
    return as_mlflow_metrics(values)


def alignment_examples(
    raw_long: pd.DataFrame, repaired_long: pd.DataFrame, mi: ModelInput, cfg: ReportingConfig
) -> Figure:
    """Before (raw), after repair and after alignment, next to the references, per class."""
    raw = long_to_series(raw_long)
    repaired = long_to_series(repaired_long)
    aligned = {str(sid): mi.X["train"][i] for i, sid in enumerate(mi.series_ids["train"])}
    refs = {
        name: np.asarray(ref)
        for name, ref in mi.metadata.get("alignment", {}).get("references", {}).items()
    }
    return examples_figure(
        raw,
        repaired.split("train"),
        aligned,
        refs,
        channel=min(cfg.example_channel, len(mi.channels) - 1),
        per_class=cfg.examples_per_class,
    )
