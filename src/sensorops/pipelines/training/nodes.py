"""Thin Kedro adapters over :mod:`sensorops.training` (no MLflow imports here: the library and the
catalog's kedro-mlflow datasets do the logging)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sensorops.contracts import DataQualitySummary, TrainingSummary
from sensorops.model_input import ModelInput, model_input_digests
from sensorops.training.config import TrainingConfig
from sensorops.training.evaluation import EvaluationConfig, evaluate_checkpoint, evaluation_metrics
from sensorops.training.launcher import launch_training
from sensorops.training.plots import training_curves_figure


class DataQualityGateError(RuntimeError):
    """Training refuses data that the data-quality gate did not pass."""


def require_data_quality_passed(
    dq_summary: dict[str, Any] | DataQualitySummary, model_input: ModelInput
) -> None:
    """Raise unless ``rpt_dq_summary`` passed **and** was made from this very ``model_input``.

    The data-quality gate raises before writing its summary when a ``fail`` tier fails, so after a
    failed gate the summary on disk is the previous run's. Its ``model_input_digests`` then differ
    from the model input's, and training refuses instead of trusting the stale "passed". The rule
    is :meth:`sensorops.contracts.DataQualitySummary.verdict`, the one the registry gate applies.
    """
    summary = DataQualitySummary.from_dict(dq_summary)
    current = model_input_digests(model_input)
    verdict = summary.verdict(current)
    if verdict.stale_splits:
        raise DataQualityGateError(
            "training refused: the data-quality summary (rpt_dq_summary) was not made from the current "
            f"model input (validated digests {summary.model_input_digests}, current {current}); run "
            "`kedro run --pipelines=data_quality` on this model input first"
        )
    if summary.passed is True:
        return
    raise DataQualityGateError(
        "training refused: the data-quality summary (rpt_dq_summary) does not say passed "
        f"(failing tiers: {verdict.failing or 'unknown'}); fix the data and re-run "
        "`kedro run --pipelines=ingestion,data_quality`"
    )


def train_model(
    model_input: ModelInput, dq_summary: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Launch the distributed training workers and wait for them, once the data passed the DQ gate.

    Args:
        model_input: the aligned, normalized arrays (re-saved into the run directory for the workers).
        dq_summary: ``rpt_dq_summary``; taking it makes training wait for the data-quality gate.
        params: ``training.trainer`` parameters.

    Returns:
        ``(training_summary, training_metrics)``: the summary (``best_checkpoint``,
        ``last_checkpoint``, ``model_name``, ``mlflow_child_run_id``, ``best_val_metric``...) and
        its headline numbers for ``MlflowMetricsHistoryDataset``.
    """
    cfg = TrainingConfig.from_dict(params)
    require_data_quality_passed(dq_summary, model_input)
    summary = launch_training(cfg, model_input)
    return summary, TrainingSummary.from_dict(summary).metrics()


def evaluate_model(
    training_summary: dict[str, Any],
    model_input: ModelInput,
    contract: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, Any, dict[str, Any]]:
    """Evaluate the best checkpoint on the test split, with the 1-NN DTW baselines.

    Args:
        training_summary: output of :func:`train_model` (``best_checkpoint`` is used).
        model_input: the model input (its test split and, for the baseline, its train split).
        contract: ``int_sensor_long``, the split contract data before outlier handling and
            alignment: the textbook 1-NN DTW baseline is fitted on its train+val series.
        params: ``training.evaluation`` parameters.

    Returns:
        ``(report, test_predictions, classification_report, confusion_figure, metrics)``.
    """
    cfg = EvaluationConfig.from_dict(params)
    summary = TrainingSummary.from_dict(training_summary)
    result = evaluate_checkpoint(summary.checkpoint(), model_input, cfg, contract=contract)
    report = {
        **result.report,
        "mlflow_training_run_id": summary.mlflow_child_run_id,
        "checkpoint_sha256": summary.best_checkpoint_sha256,  # lineage check at promotion
    }
    return (
        report,
        result.predictions,
        result.per_class,
        result.confusion_figure,
        evaluation_metrics(report),
    )


def plot_training_curves(training_summary: dict[str, Any]) -> Any:
    """``rpt_training_curves``: train/val loss and validation accuracy/macro-F1 against the step.

    Args:
        training_summary: output of :func:`train_model` (its per-epoch ``history``, ``best_step``).

    Returns:
        A matplotlib ``Figure`` (saved as ``training_curves.png`` and logged to MLflow).
    """
    summary = TrainingSummary.from_dict(training_summary)
    return training_curves_figure(
        summary.history,
        best_step=summary.best_step,
        title=f"training of {summary.model_name or 'model'}",
    )
