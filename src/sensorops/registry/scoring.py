"""Predicting with registered ONNX models and scoring them on the test split.

Scores come from :func:`sensorops.metrics.scores_from_logits`, the one definition of accuracy and
macro-F1 in the project, so the registry's no-regression gate and the compression table agree.

:func:`onnx_logits` keeps its own small ONNX Runtime loop rather than
:mod:`sensorops.modeling.runtime`: importing that module runs ``sensorops.modeling.__init__``,
which imports torch (about 3 s on every ``sensorops models promote``), and its
``create_session`` opens a file path whereas registered models arrive as in-memory bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sensorops.metrics import scores_from_logits

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
        macro_f1: unweighted mean F1 over **all** ``n_classes`` classes (a class absent from
            both ``y`` and the predictions counts 0), in [0, 1].
        n: number of series scored.
    """

    accuracy: float
    macro_f1: float
    n: int

    def get(self, metric: str) -> float:
        return float(getattr(self, metric))


def score(logits: np.ndarray, y: np.ndarray) -> Scores:
    """Accuracy and macro-F1 of ``argmax(logits)`` (``(n_series, n_classes)``) against ``y``
    (``(n_series,)`` int codes), by :func:`sensorops.metrics.scores_from_logits`.

    Raises:
        ValueError: the test split is empty, or ``logits`` does not match ``y``.
    """
    if len(y) == 0:
        raise ValueError(
            "cannot score on an empty test split; mi_model_input test split has 0 series"
        )
    scores = scores_from_logits(np.asarray(y), logits)
    return Scores(accuracy=scores["accuracy"], macro_f1=scores["macro_f1"], n=len(y))
