"""Ingestion reports: counts, alignment-cost histogram and before/after example plots.

Figures are returned as matplotlib ``Figure`` objects (Agg backend, nothing shown); the caller
saves them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sensorops.timeseries.series import SeriesSet


def counts_per_split_class(
    ids_by_split: dict[str, np.ndarray], labels_by_split: dict[str, Sequence[str]]
) -> dict[str, dict[str, int]]:
    """``{split: {label: n_series}}``."""
    out: dict[str, dict[str, int]] = {}
    for split, labels in labels_by_split.items():
        values, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
        out[split] = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    return out


def cost_histogram(costs: pd.DataFrame, bins: int = 30) -> Figure:
    """Histogram of alignment costs per split (``costs`` has columns split, cost)."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    finite = costs[np.isfinite(costs["cost"])]
    edges = np.histogram_bin_edges(finite["cost"], bins=bins) if len(finite) else bins
    for split, g in finite.groupby("split", sort=True):
        ax.hist(g["cost"], bins=edges, alpha=0.5, label=f"{split} (n={len(g)})")
    ax.set_xlabel("DTW distance to reference")
    ax.set_ylabel("series")
    ax.set_title("Alignment cost per split")
    ax.legend()
    fig.tight_layout()
    return fig


def examples_figure(
    raw: SeriesSet,
    repaired: SeriesSet,
    aligned: dict[str, np.ndarray],
    references: dict[str, np.ndarray],
    channel: int = 0,
    per_class: int = 1,
) -> Figure:
    """Example train series per class: raw, after repair, after alignment (with the reference).

    Args:
        raw: contract-checked series (before repair).
        repaired: series after outlier handling (same ids, minus dropped ones).
        aligned: series id -> aligned ``(ref_length, n_channels)`` (not normalised).
        references: reference name -> ``(ref_length, n_channels)``.
        channel: channel index drawn.
        per_class: examples per class.
    """
    classes = sorted(set(repaired.labels.tolist()))
    fig, axes = plt.subplots(
        len(classes), 3, figsize=(12, 2.4 * len(classes)), dpi=90, squeeze=False
    )
    raw_by_id = {sid: v for sid, v in zip(raw.ids, raw.values, strict=True)}
    ch_name = repaired.channels[channel] if channel < len(repaired.channels) else "?"
    for row, label in enumerate(classes):
        ids = [
            sid
            for sid, lab in zip(repaired.ids, repaired.labels, strict=True)
            if lab == label and sid in aligned
        ]
        rep_by_id = {sid: v for sid, v in zip(repaired.ids, repaired.values, strict=True)}
        for sid in ids[:per_class]:
            axes[row, 0].plot(raw_by_id[sid][:, channel], lw=0.8)
            axes[row, 1].plot(rep_by_id[sid][:, channel], lw=0.8)
            axes[row, 2].plot(aligned[sid][:, channel], lw=0.8, label=sid)
        ref = references.get(label, references.get("__global__"))
        if ref is not None:
            axes[row, 2].plot(ref[:, channel], "k--", lw=1.0, label="reference")
        axes[row, 0].set_ylabel(label)
        axes[row, 2].legend(fontsize=6)
    for col, title in enumerate(("raw", "after repair", "after DTW alignment")):
        axes[0, col].set_title(f"{title} ({ch_name})")
    fig.tight_layout()
    return fig
