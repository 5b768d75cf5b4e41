"""Per-channel standardisation with statistics of the training split."""

from __future__ import annotations

import numpy as np


class ChannelStandardizer:
    """``(x - mean_) / std_`` per channel; statistics from training arrays only.

    Args:
        eps: floor for the standard deviation (constant channels stay finite).

    Fitted attributes: ``mean_`` ``(n_channels,)``, ``std_`` ``(n_channels,)`` (float64).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def fit(self, X: np.ndarray) -> ChannelStandardizer:
        """Fit on ``X`` ``(n_series, length, n_channels)``."""
        if X.ndim != 3 or len(X) == 0:
            raise ValueError(
                f"standardizer needs a non-empty (n_series, length, n_channels) array; got {X.shape}"
            )
        flat = X.reshape(-1, X.shape[2]).astype(np.float64)
        self.mean_ = flat.mean(axis=0)
        self.std_ = np.maximum(flat.std(axis=0), self.eps)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of ``X`` ``(n_series, length, n_channels)``."""
        return ((X - self.mean_) / self.std_).astype(np.float32)

    def to_dict(self, channels: list[str] | tuple[str, ...]) -> dict[str, dict[str, float]]:
        """``{channel: {"mean": m, "std": s}}`` (JSON-serialisable)."""
        return {
            str(ch): {"mean": float(m), "std": float(s)}
            for ch, m, s in zip(channels, self.mean_, self.std_, strict=True)
        }
