"""The monitoring dashboard: one PNG of traffic, latency, per-channel drift and accuracy over time."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sensorops.monitoring.performance import wilson


def _buckets(n: int, k: int) -> np.ndarray:
    return np.linspace(0, n, min(k, max(n, 1)) + 1).astype(int)


def dashboard(plot: dict[str, Any]) -> Figure:
    """Build the figure from :func:`sensorops.monitoring.monitor.monitor`'s plot data."""
    recs, report, ref = plot["records"], plot["report"], plot["reference"]
    over_time: dict[str, list[float]] = plot["over_time"]
    k = int(report.traffic.get("buckets", 8))
    fig = Figure(figsize=(13, 8.5), constrained_layout=True)
    axes = fig.subplots(2, 3)
    fig.suptitle(
        f"{report.model} v{report.version}: decision {report.decision.upper()} - "
        f"{report.window['n_records']} records, {report.window['n_labelled']} labelled, "
        f"{report.window['since']} .. {report.window['until']}",
        fontsize=10,
    )
    n = len(recs)
    edges = _buckets(n, k)
    mids = [(a + b) / 2 for a, b in pairwise(edges)]
    times = recs["time"].to_numpy() if n else np.array([])
    labels = [str(times[int(m)])[11:19] if n else "" for m in mids]

    ax = axes[0, 0]
    counts = [b - a for a, b in pairwise(edges)]
    ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.set_title("traffic (records per bucket)")
    ax.set_xticks(range(len(counts)), labels, rotation=45, fontsize=7)

    ax = axes[0, 1]
    lat = recs["latency_ms"].to_numpy(dtype=float) if n else np.array([])
    p50 = [np.percentile(lat[a:b], 50) if b > a else np.nan for a, b in pairwise(edges)]
    p99 = [np.percentile(lat[a:b], 99) if b > a else np.nan for a, b in pairwise(edges)]
    ax.plot(p50, marker="o", label="p50")
    ax.plot(p99, marker="o", label="p99")
    ax.set_title("latency (ms)")
    ax.set_xticks(range(len(p50)), labels, rotation=45, fontsize=7)
    ax.legend(fontsize=8)

    ax = axes[0, 2]
    flagged = set(report.drifted_channels)
    for ch, vals in over_time.items():
        ax.plot(
            vals,
            marker="o",
            lw=2.5 if ch in flagged else 1.0,
            label=f"{ch}{' (drift)' if ch in flagged else ''}",
        )
    ax.axhline(0.2, color="grey", ls="--", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_title("per-channel drift over time (KS distance)")
    ax.set_xticks(range(len(mids)), labels, rotation=45, fontsize=7)
    ax.legend(fontsize=7, ncol=2)

    ax = axes[1, 0]
    acc, lo, hi = [], [], []
    for a, b in pairwise(edges):
        part = recs.iloc[a:b]
        part = part[part["label"].notna()]
        c = int((part["label"].astype(str) == part["predicted"].astype(str)).sum())
        m = len(part)
        acc.append(c / m if m else np.nan)
        w = wilson(c, m)
        lo.append(w[0])
        hi.append(w[1])
    ax.plot(acc, marker="o", color="tab:green", label="live accuracy")
    ax.fill_between(range(len(acc)), lo, hi, color="tab:green", alpha=0.2, label="95% CI")
    if ref.test_accuracy is not None:
        ax.axhline(
            ref.test_accuracy,
            color="k",
            ls="--",
            lw=1,
            label=f"offline test {ref.test_accuracy:.3f} (n={ref.n_test})",
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("accuracy over time (labelled records)")
    ax.set_xticks(range(len(acc)), labels, rotation=45, fontsize=7)
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    rc = np.asarray(ref.alignment_cost, dtype=float)[ref.model_side_mask()]
    wc = recs["alignment_cost"].to_numpy(dtype=float) if n else np.array([])
    hi_edge = np.nanpercentile(np.concatenate([rc, wc]), 99) if len(wc) else np.nanmax(rc)
    bins = np.linspace(0, hi_edge, 30)
    ax.hist(rc, bins=bins, density=True, alpha=0.5, label=f"reference, held-out (n={len(rc)})")
    ax.hist(wc, bins=bins, density=True, alpha=0.5, label=f"window (n={len(wc)})")
    ax.set_title("DTW alignment cost")
    ax.legend(fontsize=8)

    ax = axes[1, 2]
    ax.axis("off")
    lines = [f"decision: {report.decision}"] + [f"- {r}" for r in report.reasons[:8]]
    wrapped = []
    for line in lines:
        while len(line) > 70:
            wrapped.append(line[:70])
            line = "  " + line[70:]
        wrapped.append(line)
    ax.text(0, 1, "\n".join(wrapped[:28]), va="top", ha="left", family="monospace", fontsize=7)
    return fig
