"""``mdl_training_summary`` and ``rpt_evaluation``: what training and evaluation hand on."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from sensorops.contracts.base import Artifact, ArtifactError
from sensorops.metrics import as_mlflow_metrics


class TrainingSummary(Artifact):
    """``mdl_training_summary``, written by rank 0 of the training workers (plus the launcher's ids)."""

    artifact: ClassVar[str] = "mdl_training_summary"
    model_name: str | None = None
    best_checkpoint: str | None = None
    """``<output_dir>/checkpoints/best.pt``; what evaluation, export and compression read."""
    best_checkpoint_sha256: str | None = None
    """sha256 of ``best_checkpoint`` when training finished; export refuses a file that differs."""
    last_checkpoint: str | None = None
    best_val_metric_name: str | None = None
    best_val_metric: float | None = None
    best_step: int | None = None
    final_step: int | None = None
    epochs_completed: int | None = None
    train_samples_per_s: float | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    """One entry per epoch: ``step``, ``train_loss``, ``val_loss``, ``val_accuracy``..."""
    mlflow_child_run_id: str | None = None
    mlflow_parent_run_id: str | None = None
    resolved_config: str | None = None

    def checkpoint(self) -> str:
        """``best_checkpoint``, or an error saying which artifact lacks it."""
        if not self.best_checkpoint:
            raise ArtifactError(
                f"{self.artifact} has no best_checkpoint; run `kedro run --pipelines=training`"
            )
        return self.best_checkpoint

    def metrics(self) -> dict[str, dict[str, float | int]]:
        """Headline numbers in the input format of kedro-mlflow's ``MlflowMetricsHistoryDataset``."""
        return as_mlflow_metrics(
            {
                "best_val_metric": self.best_val_metric,
                "final_step": self.final_step,
                "epochs_completed": self.epochs_completed,
                "train_samples_per_s": self.train_samples_per_s,
            }
        )


class EvaluationReport(Artifact):
    """``rpt_evaluation``: test-split scores of the best checkpoint next to the 1-NN DTW baseline."""

    artifact: ClassVar[str] = "rpt_evaluation"
    accuracy: float
    macro_f1: float
    roc_auc_ovr: float | None = None
    per_class: dict[str, dict[str, Any]] = Field(default_factory=dict)
    baseline_1nn_dtw: dict[str, Any] | None = None
    delta_vs_baseline: dict[str, Any] | None = None
    mlflow_training_run_id: str | None = None
    checkpoint_sha256: str | None = None
    """sha256 of the checkpoint that was evaluated (lineage check at promotion)."""
