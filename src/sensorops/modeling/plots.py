"""The compression trade-off figure: accuracy against size and p50 latency, one point per variant."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure

from sensorops.modeling.errors import ModelingError

_P50 = re.compile(r"^p50_ms_b(\d+)$")


def latency_batch_size(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """The smallest batch size ``b`` with a ``p50_ms_b<b>`` value in every row (``None``: none)."""
    common: set[int] | None = None
    for row in rows:
        sizes = {
            int(m.group(1))
            for key, value in row.items()
            if (m := _P50.match(key)) and value is not None
        }
        common = sizes if common is None else common & sizes
    return min(common) if common else None


def compression_tradeoffs_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Accuracy (in [0, 1], higher is better) against file size (KiB) and against p50 latency (ms)
    at the smallest measured batch size; one labelled point per variant, gate failures drawn as x.

    Args:
        rows: the comparison rows (``rpt_compression_comparison["variants"]``), each with ``name``,
            ``accuracy``, ``size_bytes``, ``gate_passed`` and ``p50_ms_b<batch>``.

    Raises:
        ModelingError: no rows, or a row lacks ``name``/``accuracy``/``size_bytes``.
    """
    if not rows:
        raise ModelingError("compression comparison has no variants: nothing to plot")
    for row in rows:
        missing = [k for k in ("name", "accuracy", "size_bytes") if row.get(k) is None]
        if missing:
            raise ModelingError(
                f"compression row {row.get('name', '?')!r} lacks {missing}; cannot plot it"
            )
    batch = latency_batch_size(rows)
    fig = Figure(figsize=(11, 4.5), dpi=100)
    size_ax, lat_ax = fig.subplots(1, 2, sharey=True)
    panels: list[tuple[Any, str, str]] = [(size_ax, "size_bytes", "size (KiB)")]
    if batch is not None:
        panels.append((lat_ax, f"p50_ms_b{batch}", f"p50 latency, batch {batch} (ms)"))
    else:
        lat_ax.text(0.5, 0.5, "no latency measured", ha="center", va="center")
    colors = matplotlib.colormaps["tab10"]
    for ax, key, label in panels:
        for i, row in enumerate(rows):
            x = float(row[key]) / (1024.0 if key == "size_bytes" else 1.0)
            failed = row.get("gate_passed") is False
            ax.scatter(
                x,
                float(row["accuracy"]),
                marker="x" if failed else "o",
                s=50,
                color=colors(i % 10),
                label=str(row["name"]) + (" (gate failed)" if failed else ""),
            )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    size_ax.set_ylabel("test accuracy (higher is better)")
    # a legend instead of point labels: variants often sit on top of each other
    fig.legend(*size_ax.get_legend_handles_labels(), loc="center right", fontsize="small")
    fig.subplots_adjust(right=0.78)
    fig.suptitle("compression trade-offs (x = failed its accuracy gate)")
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    return fig
