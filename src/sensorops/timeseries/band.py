"""The DTW global constraint fixed in steps: the one value the kernel needs.

The YAML gives the Sakoe-Chiba radius as a fraction of the reference length (or in steps); that
conversion happens once, in :meth:`sensorops.timeseries.config.DTWConfig.band`, when the reference
length is known (in :meth:`~sensorops.timeseries.alignment.SeriesAligner.fit`). The kernel module
:mod:`sensorops.timeseries.dtw` only sees a :class:`Band`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

WINDOWS: tuple[str, ...] = ("none", "sakoe_chiba", "itakura")


@dataclass(frozen=True)
class Band:
    """A DTW window: ``none``, ``sakoe_chiba`` with ``radius`` steps, or ``itakura`` with ``max_slope``."""

    window: Literal["none", "sakoe_chiba", "itakura"] = "none"
    radius: int = 0
    """Sakoe-Chiba radius in steps (0 unless ``window == "sakoe_chiba"``)."""
    max_slope: float = 0.0
    """Itakura parallelogram slope (0 unless ``window == "itakura"``)."""

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"band.window must be one of {list(WINDOWS)}; got {self.window!r}")
        if self.radius < 0:
            raise ValueError(f"band.radius must be >= 0; got {self.radius}")
        if self.window == "itakura" and self.max_slope <= 1.0:
            raise ValueError(f"band.max_slope must be > 1 for itakura; got {self.max_slope}")

    def tslearn_kwargs(self) -> dict[str, object]:
        """Keyword arguments giving ``tslearn.metrics.dtw_path`` the same constraint."""
        if self.window == "sakoe_chiba":
            return {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": self.radius}
        if self.window == "itakura":
            return {"global_constraint": "itakura", "itakura_max_slope": self.max_slope}
        return {}


class BandSource(Protocol):
    """Anything that fixes a :class:`Band` for a reference length (``DTWConfig`` does)."""

    def band(self, ref_length: int) -> Band: ...


def as_band(constraint: Band | BandSource, ref_length: int) -> Band:
    """``constraint`` itself, or the band it fixes for a reference of ``ref_length`` steps."""
    return constraint if isinstance(constraint, Band) else constraint.band(ref_length)
