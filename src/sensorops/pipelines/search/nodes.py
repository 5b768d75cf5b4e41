"""Thin Kedro adapters over :mod:`sensorops.search` (no MLflow imports here: the search package
logs each trial as a nested run, the catalog's kedro-mlflow datasets log the reports)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sensorops.model_input import ModelInput
from sensorops.pipelines.training.nodes import require_data_quality_passed
from sensorops.search import SearchConfig
from sensorops.search import report as search_report
from sensorops.training.config import TrainingConfig


def run_search(
    model_input: ModelInput,
    dq_summary: dict[str, Any],
    search_params: dict[str, Any],
    trainer_params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run (or resume) the Optuna study once the data passed the data-quality gate.

    Args:
        model_input: the aligned, normalized arrays (trials train on train, are scored on val).
        dq_summary: ``rpt_dq_summary``; the search refuses data the gate did not pass.
        search_params: ``search`` parameters (space, budget, pruner, study).
        trainer_params: ``training.trainer``: what every trial starts from.

    Returns:
        ``(rpt_search_trials, rpt_search_summary)``: every trial of the study, and what this run did.
    """
    cfg = SearchConfig.from_dict(search_params)  # a bad space fails here, before any trial
    trainer = TrainingConfig.from_dict(trainer_params)
    require_data_quality_passed(dq_summary, model_input)
    from sensorops.search.study import run_search as _run

    result = _run(cfg, trainer, model_input)
    summary = {
        "study": result.study_name,
        "storage": result.storage,
        "trials_run_now": result.ran_now,
        "seconds": result.seconds,
        "n_trials_budget": cfg.budget.n_trials,
        "steps_per_trial": cfg.budget.steps_per_trial,
    }
    return pd.DataFrame(result.trials), summary


def report_search(
    trials: pd.DataFrame, summary: dict[str, Any], search_params: dict[str, Any]
) -> tuple[pd.DataFrame, Any, str, dict[str, Any]]:
    """Pareto front table and plot, the chosen trial's parameters, headline metrics.

    Returns:
        ``(rpt_search_pareto, rpt_search_pareto_plot, rpt_search_best_parameters,
        rpt_search_metrics)``.
    """
    cfg = SearchConfig.from_dict(search_params)
    df = search_report.trials_frame(trials.to_dict("records"))
    chosen = search_report.choose(df, cfg.objectives.accuracy_tolerance)
    front = search_report.pareto_frame(df, chosen)
    fig = search_report.pareto_figure(df, chosen, f"search {summary['study']}")
    text = search_report.chosen_parameters_yaml(chosen, summary["study"], summary["storage"])
    states = df["state"].value_counts()
    metrics = {
        "search_trials_complete": {"value": float(states.get("COMPLETE", 0)), "step": 0},
        "search_trials_pruned": {"value": float(states.get("PRUNED", 0)), "step": 0},
        "search_pareto_size": {"value": float(len(front)), "step": 0},
        "search_chosen_val_accuracy": {"value": float(chosen["val_accuracy"]), "step": 0},
        "search_chosen_latency_p50_ms": {"value": float(chosen["latency_p50_ms"]), "step": 0},
        "search_chosen_onnx_params": {"value": float(chosen["onnx_params"]), "step": 0},
    }
    return front, fig, text, metrics
