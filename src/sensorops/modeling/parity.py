"""Torch vs ONNX Runtime parity on real inputs at several batch sizes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from sensorops.modeling.errors import ParityError
from sensorops.modeling.runtime import OrtSession


@dataclass(frozen=True)
class ParityReport:
    """Result of :func:`check_parity`.

    Attributes:
        atol: tolerance on the max absolute logit difference.
        max_abs_diff: batch size -> max |torch - ORT| over all compared series.
        pred_mismatches: batch size -> number of series whose argmax differs.
        n_series: series compared at each batch size.
        execution_provider: provider the ORT session really ran on.
        passed: every batch size within ``atol`` with identical predicted classes.
    """

    atol: float
    max_abs_diff: dict[int, float]
    pred_mismatches: dict[int, int]
    n_series: int
    execution_provider: str
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        ok = all(d <= self.atol for d in self.max_abs_diff.values()) and not any(
            self.pred_mismatches.values()
        )
        object.__setattr__(self, "passed", ok)

    @property
    def worst_abs_diff(self) -> float:
        return max(self.max_abs_diff.values())

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["max_abs_diff"] = {str(k): v for k, v in self.max_abs_diff.items()}
        out["pred_mismatches"] = {str(k): v for k, v in self.pred_mismatches.items()}
        out["worst_abs_diff"] = self.worst_abs_diff
        return out

    def raise_if_failed(self, what: str = "model") -> None:
        """Raise :class:`ParityError` with the numbers when parity failed."""
        if not self.passed:
            raise ParityError(
                f"ONNX parity failed for {what} on {self.execution_provider}: max |torch - ORT| per "
                f"batch size {self.max_abs_diff} (tolerance {self.atol}), predicted-class "
                f"mismatches {self.pred_mismatches} of {self.n_series} series"
            )


def torch_logits(model: nn.Module, X: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Eager fp32 logits ``(n, n_classes)`` of ``model`` (eval mode) for ``X`` ``(n, time, channels)``."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(X), batch_size):
            outs.append(
                model(torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size]))).numpy()
            )
    return np.concatenate(outs, axis=0)


def check_parity(
    model: nn.Module,
    session: OrtSession,
    X: np.ndarray,
    batch_sizes: Sequence[int] = (1, 16),
    atol: float = 1e-4,
) -> ParityReport:
    """Compare eager torch and ONNX Runtime logits on ``X`` ``(n, time, channels)``.

    At every batch size ``b`` the series are fed in chunks of ``b`` (the last chunk may be
    smaller) so the dynamic batch axis is exercised. The torch reference is computed once.

    Raises:
        ParityError: ``X`` is empty or not 3-D (mismatches themselves are reported, not raised;
            call :meth:`ParityReport.raise_if_failed`).
    """
    if X.ndim != 3 or len(X) == 0:
        raise ParityError(
            f"parity needs a non-empty (n, time, channels) array; got shape {X.shape}"
        )
    X = np.ascontiguousarray(X, dtype=np.float32)
    ref = torch_logits(model, X)
    ref_pred = ref.argmax(axis=1)
    diffs: dict[int, float] = {}
    mismatches: dict[int, int] = {}
    for b in batch_sizes:
        got = session.predict_logits(X, batch_size=int(b))
        diffs[int(b)] = float(np.max(np.abs(got - ref)))
        mismatches[int(b)] = int(np.sum(got.argmax(axis=1) != ref_pred))
    return ParityReport(
        atol=float(atol),
        max_abs_diff=diffs,
        pred_mismatches=mismatches,
        n_series=len(X),
        execution_provider=session.provider,
    )
