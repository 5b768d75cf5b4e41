"""Training curves from the run summary's per-epoch ``history`` (Agg backend, nothing shown)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

LOSS_KEYS: tuple[str, ...] = ("train_loss", "val_loss")
METRIC_KEYS: tuple[str, ...] = ("val_accuracy", "val_macro_f1")


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [
        (float(h["step"]), float(h[key])) for h in history if h.get(key) is not None and "step" in h
    ]
    return [p[0] for p in points], [p[1] for p in points]


def training_curves_figure(
    history: Sequence[Mapping[str, Any]],
    best_step: int | None = None,
    title: str | None = None,
) -> Figure:
    """Two panels against the optimizer step: train/val loss (lower is better) and the validation
    accuracy and macro-F1 (in [0, 1], higher is better); a dotted line marks ``best_step``.

    Args:
        history: one entry per epoch, ``{"step", "train_loss", "val_loss", "val_accuracy",
            "val_macro_f1", ...}`` (``mdl_training_summary["history"]``); missing keys are skipped.
        best_step: step of the best checkpoint, if any.
        title: figure title.

    Raises:
        ValueError: ``history`` is empty or has no ``step``/loss values (names what is missing).
    """
    if not history:
        raise ValueError(
            "training summary 'history' is empty: no epoch was validated, nothing to plot"
        )
    if not any(_series(history, k)[0] for k in LOSS_KEYS):
        raise ValueError(
            f"training summary 'history' entries need 'step' and one of {list(LOSS_KEYS)}; "
            f"got keys {sorted(history[0])}"
        )
    fig = Figure(figsize=(10, 4), dpi=100)
    loss_ax, metric_ax = fig.subplots(1, 2)
    for key in LOSS_KEYS:
        steps, values = _series(history, key)
        if steps:
            loss_ax.plot(steps, values, marker="o", label=key)
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("cross-entropy loss")
    loss_ax.set_title("loss")
    for key in METRIC_KEYS:
        steps, values = _series(history, key)
        if steps:
            metric_ax.plot(steps, values, marker="o", label=key)
    metric_ax.set_xlabel("step")
    metric_ax.set_ylabel("score (higher is better)")
    metric_ax.set_ylim(-0.02, 1.02)
    metric_ax.set_title("validation metrics")
    for ax in (loss_ax, metric_ax):
        if best_step is not None:
            ax.axvline(best_step, color="grey", linestyle=":", label=f"best (step {best_step})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
