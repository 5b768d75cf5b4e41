"""Training curves figure from the summary's history."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorops.pipelines.training.nodes import plot_training_curves
from sensorops.training.plots import training_curves_figure

HISTORY = [
    {"step": 4.0, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.4, "val_macro_f1": 0.3},
    {"step": 8.0, "train_loss": 0.6, "val_loss": 0.7, "val_accuracy": 0.7, "val_macro_f1": 0.65},
    {"step": 12.0, "train_loss": None, "val_loss": 0.5, "val_accuracy": 0.9, "val_macro_f1": 0.9},
]


def test_curves_have_loss_and_metric_panels() -> None:
    fig = training_curves_figure(HISTORY, best_step=12, title="t")
    loss_ax, metric_ax = fig.axes
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert list(lines["train_loss"].get_xdata()) == [4.0, 8.0]  # None skipped
    assert list(lines["val_loss"].get_ydata()) == [1.1, 0.7, 0.5]
    assert "best (step 12)" in lines
    metrics = {line.get_label(): line for line in metric_ax.get_lines()}
    assert list(metrics["val_macro_f1"].get_ydata()) == [0.3, 0.65, 0.9]
    assert "val_accuracy" in metrics


def test_node_plots_the_summary_and_png_saves(tmp_path: Path) -> None:
    fig = plot_training_curves({"history": HISTORY, "best_step": 8, "model_name": "resnet1d"})
    assert fig._suptitle.get_text() == "training of resnet1d"
    fig.savefig(tmp_path / "c.png", format="png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_empty_or_lossless_history_is_an_error() -> None:
    with pytest.raises(ValueError, match="'history' is empty"):
        plot_training_curves({"best_step": None})
    with pytest.raises(ValueError, match=r"need 'step' and one of \['train_loss', 'val_loss'\]"):
        training_curves_figure([{"epoch": 1.0}])
