"""Curriculum learning: training starts on the easiest series and widens to all of them.

Difficulty (``score: dtw_to_class_reference``): for each training series, its dependent-DTW
cost to its own class reference (the class mean of the aligned training series, which is what
ingestion aligned them to) relative to the nearest other class's reference:
``d_own / (d_own + min_other d_other)`` in ``[0, 1]``, lower = easier (typical of its class and far
from the others). Series are ranked WITHIN their class, so every class is present from step 0.

Pacing (linear): the pool holds the easiest ``f(step)`` share of each class,
``f = start_fraction + (1 - start_fraction) x min(1, step / (pace_share x total_steps))``.
A batch index outside the pool is replaced by a pool member of the same class (seeded per rank
and step), so batch sizes, steps and DDP shards stay unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from sensorops.config_validation import STRICT_DATACLASS, StrictBool, StrictFloat


@dataclass(config=STRICT_DATACLASS)
class CurriculumConfig:
    """The ``training.trainer.curriculum`` parameters."""

    enabled: StrictBool = False
    """Train from easy to hard series (off: every batch is drawn from all training series)."""
    score: Literal["dtw_to_class_reference"] = "dtw_to_class_reference"
    """Difficulty score per training series (see the module docstring)."""
    start_fraction: StrictFloat = Field(0.5, gt=0.0, le=1.0)
    """Share of each class in the pool at step 0, in (0, 1]."""
    pace_share: StrictFloat = Field(0.5, gt=0.0, le=1.0)
    """Share of the total optimizer steps after which the pool holds every series, in (0, 1]."""
    band_fraction: StrictFloat = Field(0.1, gt=0.0, le=1.0)
    """Sakoe-Chiba radius of the difficulty DTW, as a fraction of the length."""


def difficulty_scores(X: np.ndarray, y: np.ndarray, band_fraction: float = 0.1) -> np.ndarray:
    """``(n_series,)`` difficulty in [0, 1] of ``X`` ``(n, length, n_channels)`` with codes ``y``.

    ``d_own / (d_own + d_nearest_other)`` of DTW costs to per-class mean references; a class
    alone (no other class) gives 0 for all its series.
    """
    from sensorops.training.evaluation import dtw_cdist

    classes = np.unique(y)
    refs = [X[y == c].astype(np.float64).mean(axis=0) for c in classes]
    dist = dtw_cdist([s.astype(np.float64) for s in X], refs, band_fraction)  # (n, n_classes)
    col = np.searchsorted(classes, y)
    own = dist[np.arange(len(y)), col]
    other = dist.copy()
    other[np.arange(len(y)), col] = np.inf
    nearest = other.min(axis=1)
    out = np.where(np.isfinite(nearest), own / np.maximum(own + nearest, 1e-300), 0.0)
    return out.astype(np.float64)


def within_class_rank(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1] of each series' score within its class (1 = hardest)."""
    rank = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        order = members[np.argsort(scores[members], kind="stable")]
        rank[order] = (np.arange(len(members)) + 1) / len(members)
    return rank


def pool_fraction(step: int, total_steps: int, cfg: CurriculumConfig) -> float:
    """The pacing function: share of each class in the pool at ``step`` (1.0 when off)."""
    if not cfg.enabled:
        return 1.0
    horizon = max(1.0, cfg.pace_share * total_steps)
    return float(
        min(1.0, cfg.start_fraction + (1.0 - cfg.start_fraction) * min(1.0, step / horizon))
    )


class Curriculum:
    """Restricts training batches to the current pool of easy series.

    Args:
        cfg: curriculum parameters.
        X: training arrays ``(n, length, n_channels)``; y: codes ``(n,)``.
        total_steps: the run's optimizer steps (the pacing horizon refers to it).
        seed: this rank's seed.
    """

    def __init__(
        self, cfg: CurriculumConfig, X: np.ndarray, y: np.ndarray, total_steps: int, seed: int
    ) -> None:
        self.cfg = cfg
        self.y = np.asarray(y)
        self.total_steps = total_steps
        self.seed = seed
        self.scores = difficulty_scores(X, self.y, cfg.band_fraction)
        self.rank = within_class_rank(self.scores, self.y)

    def fraction(self, step: int) -> float:
        return pool_fraction(step, self.total_steps, self.cfg)

    def pool(self, step: int) -> np.ndarray:
        """Indices of the series in the pool at ``step`` (each class's easiest share, >= 1 each)."""
        f = self.fraction(step)
        keep = self.rank <= f + 1e-12
        for c in np.unique(self.y):  # at least the easiest series of every class
            members = np.flatnonzero(self.y == c)
            keep[members[np.argmin(self.rank[members])]] = True
        return np.flatnonzero(keep)

    def restrict(self, sel: torch.Tensor, step: int) -> torch.Tensor:
        """``sel`` with each index outside the pool replaced by a same-class pool member."""
        if self.fraction(step) >= 1.0:
            return sel
        pool = self.pool(step)
        in_pool = np.zeros(len(self.y), dtype=bool)
        in_pool[pool] = True
        rng = np.random.default_rng(self.seed + 104729 * step)
        idx = sel.cpu().numpy().copy()
        for k, i in enumerate(idx):
            if not in_pool[i]:
                same = pool[self.y[pool] == self.y[i]]
                idx[k] = same[rng.integers(len(same))]
        return torch.from_numpy(idx).to(sel.device)
