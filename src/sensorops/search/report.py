"""What a finished search reports: the trials table, the Pareto front, its plot, the chosen trial
as a ``parameters_training.yml`` override."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from sensorops.search.study import OBJECTIVES, SearchError

SIGNS = {"val_accuracy": -1.0, "latency_p50_ms": 1.0, "onnx_params": 1.0}
"""Sign that turns each objective into "lower is better"."""


def trials_frame(trials: list[dict[str, Any]]) -> pd.DataFrame:
    """Every trial as a row, with ``pareto`` (non-dominated among completed trials)."""
    df = pd.DataFrame(trials)
    if df.empty:
        raise SearchError("the study holds no trial")
    complete = df["state"] == "COMPLETE"
    costs = [
        tuple(SIGNS[k] * float(row[k]) for k in OBJECTIVES) for _, row in df[complete].iterrows()
    ]
    pareto = [not any(_dominates(o, c) for o in costs) for c in costs]
    df["pareto"] = False
    if pareto:
        df.loc[complete, "pareto"] = pareto
    return df


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def choose(df: pd.DataFrame, accuracy_tolerance: float) -> pd.Series:
    """The fastest Pareto trial within ``accuracy_tolerance`` of the best validation accuracy
    (ties: fewer weights, then the lower trial number).

    Raises:
        SearchError: no trial completed (all pruned, failed or still running).
    """
    front = df[df["pareto"]]
    if front.empty:
        counts = df["state"].value_counts().to_dict()
        raise SearchError(
            f"no completed trial to choose from (trial states {counts}); raise "
            f"search.budget.n_trials or search.budget.steps_per_trial, or loosen the pruner"
        )
    best = front["val_accuracy"].max()
    near = front[front["val_accuracy"] >= best - accuracy_tolerance - 1e-12]
    return near.sort_values(["latency_p50_ms", "onnx_params", "number"]).iloc[0]


def pareto_frame(df: pd.DataFrame, chosen: pd.Series) -> pd.DataFrame:
    """The Pareto front, best accuracy first, with a ``chosen`` column."""
    front = df[df["pareto"]].copy()
    front["chosen"] = front["number"] == chosen["number"]
    cols = [
        "number",
        "chosen",
        "architecture",
        "hidden",
        "layers",
        "heads",
        "dropout",
        "lr",
        *OBJECTIVES,
        "val_loss",
        "mlflow_run_id",
    ]
    return front.sort_values(["val_accuracy", "latency_p50_ms"], ascending=[False, True])[cols]


def pareto_figure(df: pd.DataFrame, chosen: pd.Series, title: str) -> Any:
    """Validation accuracy against ORT p50 latency (batch 1); marker area ~ ONNX weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = df[df["state"] == "COMPLETE"]
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    scale = 300.0 / max(float(complete["onnx_params"].max()), 1.0)
    for arch, group in complete.groupby("architecture"):
        ax.scatter(
            group["latency_p50_ms"],
            group["val_accuracy"],
            s=20 + scale * group["onnx_params"],
            alpha=0.55,
            label=str(arch),
        )
    front = complete[complete["pareto"]].sort_values("latency_p50_ms")
    ax.step(
        front["latency_p50_ms"],
        front["val_accuracy"].cummax(),
        where="post",
        color="black",
        lw=1.0,
        label="Pareto front",
    )
    ax.scatter(
        [chosen["latency_p50_ms"]],
        [chosen["val_accuracy"]],
        marker="*",
        s=260,
        color="red",
        zorder=5,
        label=f"chosen (trial {int(chosen['number'])})",
    )
    pruned = int((df["state"] == "PRUNED").sum())
    ax.set_xlabel("ONNX Runtime p50 latency, batch 1 (ms)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{title}: {len(complete)} complete, {pruned} pruned (marker area ~ weights)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def chosen_overrides(chosen: pd.Series) -> dict[str, Any]:
    """The ``training.trainer`` keys the search decided, as a nested mapping."""
    model: dict[str, Any] = {
        "name": str(chosen["architecture"]),
        "hidden": int(chosen["hidden"]),
        "layers": int(chosen["layers"]),
        "dropout": round(float(chosen["dropout"]), 6),
    }
    heads = chosen.get("heads")
    if heads is not None and not (isinstance(heads, float) and math.isnan(heads)):
        model["heads"] = int(heads)
    return {
        "training": {"trainer": {"model": model, "optimizer": {"lr": float(f"{chosen['lr']:.6g}")}}}
    }


def chosen_parameters_yaml(chosen: pd.Series, study: str, storage: str) -> str:
    """A ``parameters_training.yml`` override for the chosen trial (never applied to conf/base)."""
    import yaml

    header = (
        f"# Chosen by `kedro run --pipeline=search`: study {study!r} ({storage}), trial "
        f"{int(chosen['number'])}\n"
        f"#   val_accuracy={float(chosen['val_accuracy']):.4f}  "
        f"ORT p50 batch 1={float(chosen['latency_p50_ms']):.3f} ms  "
        f"ONNX weights={int(chosen['onnx_params'])}\n"
        "# Use it with `kedro run --pipeline=training --env=search`, or copy the keys into\n"
        "# conf/<env>/parameters_training.yml. The search never edits conf/base.\n"
    )
    return header + yaml.safe_dump(chosen_overrides(chosen), sort_keys=False)
