"""``mdl_export_summary``: the parity-checked ONNX export of the best checkpoint."""

from __future__ import annotations

from typing import ClassVar

from sensorops.contracts.base import Artifact
from sensorops.metrics import as_mlflow_metrics

EXPORT_METRICS: tuple[str, ...] = (
    "parity_max_abs_diff",
    "parity_pred_mismatches",
    "size_bytes",
    "opset",
    "onnx_parity_accuracy",
)
"""The export numbers logged as MLflow metrics (``export.<name>``)."""


class ExportSummary(Artifact):
    """``mdl_export_summary``, written by :func:`sensorops.modeling.export_checkpoint`."""

    artifact: ClassVar[str] = "mdl_export_summary"
    onnx_path: str
    opset: int | None = None
    size_bytes: int | None = None
    model_name: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    onnx_sha256: str | None = None
    """sha256 of ``onnx_path`` as written; promotion refuses a swapped file."""
    parity_passed: bool | None = None
    parity_atol: float | None = None
    parity_max_abs_diff: float | None = None
    parity_pred_mismatches: int | None = None
    execution_provider: str | None = None
    onnx_parity_accuracy: float | None = None
    """Accuracy of the ONNX model on the ``parity_n_series`` parity series (the first series of
    the evaluation split): it shows the exported graph classifies like the checkpoint, and is no
    estimate of test accuracy (named ``onnx_accuracy`` before, which read as a second one)."""
    onnx_parity_macro_f1: float | None = None

    def metrics(self) -> dict[str, dict[str, float | int]]:
        """:data:`EXPORT_METRICS` as ``{"export.<name>": {"value", "step"}}`` (missing ones skipped)."""
        return as_mlflow_metrics({f"export.{key}": getattr(self, key) for key in EXPORT_METRICS})
