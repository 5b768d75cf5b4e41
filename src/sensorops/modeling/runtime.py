"""ONNX Runtime sessions whose execution provider is read back, never assumed.

``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` as available even on a machine without a
GPU or without the CUDA libraries, and a session asked for CUDA then silently falls back to the
CPU. So the provider that is reported is always the first entry of ``session.get_providers()``
after the session was built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sensorops.modeling.errors import ModelingError

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"


def resolve_providers(
    requested: Sequence[str], available: Sequence[str] | None = None
) -> list[str]:
    """Requested providers that this ONNX Runtime build offers, in the requested order.

    ``CPUExecutionProvider`` is appended as the final fallback when it is available and was not
    requested.

    Args:
        requested: provider names in priority order (from the config).
        available: defaults to ``onnxruntime.get_available_providers()``.

    Raises:
        ModelingError: none of the requested providers is available; the message lists both sets.
    """
    available = list(ort.get_available_providers() if available is None else available)
    chosen = [p for p in requested if p in available]
    if not chosen:
        raise ModelingError(
            f"none of the requested execution providers {list(requested)} is available; "
            f"this onnxruntime offers {available}"
        )
    dropped = [p for p in requested if p not in available]
    if dropped:
        logger.warning("execution providers %s are not available here and were dropped", dropped)
    if CPU_PROVIDER in available and CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return chosen


@dataclass(frozen=True)
class OrtSession:
    """An inference session plus the providers it really uses.

    Attributes:
        session: the ``onnxruntime.InferenceSession``.
        requested: providers that were passed to the session.
        used: ``session.get_providers()`` after construction (what actually runs).
        input_name: name of the single model input.
    """

    session: ort.InferenceSession
    requested: tuple[str, ...]
    used: tuple[str, ...]
    input_name: str

    @property
    def provider(self) -> str:
        """The highest-priority provider the session really got."""
        return self.used[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(batch, n_classes)`` for float32 ``x`` ``(batch, time, channels)``."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[
            0
        ]

    def predict_logits(self, X: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Logits for ``X`` ``(n, time, channels)`` computed in batches of ``batch_size``."""
        if len(X) == 0:
            raise ModelingError("cannot run the model on an empty array (0 series)")
        outs = [self.run(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
        return np.concatenate(outs, axis=0)


def create_session(
    onnx_path: str | os.PathLike[str],
    providers: Sequence[str] = (CPU_PROVIDER,),
    intra_op_threads: int = 0,
) -> OrtSession:
    """Open ``onnx_path`` with the available subset of ``providers``.

    Raises:
        ModelingError: the file does not exist, or no requested provider is available.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise ModelingError(f"ONNX model {path} does not exist; run the export pipeline first")
    chosen = resolve_providers(providers)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads:
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    used = tuple(session.get_providers())
    if used[0] != chosen[0]:
        logger.warning("asked ONNX Runtime for %s but the session runs on %s", chosen[0], used[0])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelingError(f"ONNX model {path} has {len(inputs)} inputs; expected exactly one")
    return OrtSession(
        session=session, requested=tuple(chosen), used=used, input_name=inputs[0].name
    )
