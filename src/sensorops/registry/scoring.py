"""Predicting with registered ONNX models and scoring them on the test split."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

CPU_PROVIDERS = ["CPUExecutionProvider"]


def onnx_logits(model_bytes: bytes, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run an ONNX classifier on ``X`` with ONNX Runtime on CPU.

    Args:
        model_bytes: serialized ONNX model whose first input takes ``(batch, length, n_channels)``
            float32 and whose first output is ``(batch, n_classes)`` logits.
        X: ``(n_series, length, n_channels)`` float32.
        batch_size: series per ``run`` call.

    Returns:
        ``(n_series, n_classes)`` float32 logits.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=CPU_PROVIDERS)
    name = sess.get_inputs()[0].name
    X = np.ascontiguousarray(X, dtype=np.float32)
    parts = [sess.run(None, {name: X[i : i + batch_size]})[0] for i in range(0, len(X), batch_size)]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0), np.float32)


def load_registered_logits(uri: str, X: np.ndarray) -> np.ndarray:
    """Load ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` with ``mlflow.onnx`` and predict ``X``.

    The fluent MLflow registry URI must already point at the right server
    (:meth:`sensorops.registry.client.Registry.fluent`).
    """
    import mlflow.onnx

    model = mlflow.onnx.load_model(uri)
    return onnx_logits(model.SerializeToString(), X)


@dataclass(frozen=True)
class Scores:
    """Test-split scores (higher is better).

    Attributes:
        accuracy: fraction correct in [0, 1].
        macro_f1: unweighted mean F1 over classes present in ``y`` or predictions, in [0, 1].
        n: number of series scored.
    """

    accuracy: float
    macro_f1: float
    n: int

    def get(self, metric: str) -> float:
        return float(getattr(self, metric))


def score(logits: np.ndarray, y: np.ndarray) -> Scores:
    """Accuracy and macro-F1 of ``argmax(logits)`` against ``y`` (``(n_series,)`` int codes).

    Macro-F1 averages over the classes present in ``y`` or in the predictions (as scikit-learn's
    ``f1_score(average="macro", zero_division=0)``), computed in numpy to keep the CLI light.
    """
    if len(y) == 0:
        raise ValueError(
            "cannot score on an empty test split; mi_model_input test split has 0 series"
        )
    pred = np.argmax(logits, axis=1)
    y = np.asarray(y)
    f1s = []
    for k in np.union1d(y, pred):
        tp = float(np.sum((pred == k) & (y == k)))
        denom = float(np.sum(pred == k) + np.sum(y == k))
        f1s.append(2.0 * tp / denom if denom else 0.0)
    return Scores(accuracy=float(np.mean(pred == y)), macro_f1=float(np.mean(f1s)), n=len(y))
