"""Batch augmentation for time series: CutMix (a time segment swapped across series) and Mixup.

Both act on one training micro-batch ``x`` ``(batch, length, n_channels)`` with integer labels
``y`` ``(batch,)`` and return the augmented batch with SOFT labels ``(batch, n_classes)``, whose
rows sum to 1:

- **CutMix**: with probability ``cutmix_prob`` a batch gets one segment ``[start, start + w)``,
  ``w = round(lam_cut x length)`` with ``lam_cut ~ Beta(alpha, alpha)``, replaced by the same
  segment of a partner series (a random permutation of the batch). Each label becomes
  ``(1 - w / length) x own + (w / length) x partner``: mixed by segment length.
- **Mixup**: otherwise, with probability ``mixup_prob``, ``x = lam x + (1 - lam) x[perm]`` and
  the labels likewise, ``lam ~ Beta(alpha, alpha)``.

Only the trainer's training step calls :meth:`BatchAugmenter.__call__`; validation and test
batches never pass through it. Randomness comes from the augmenter's own seeded generator (one
per rank), so runs repeat and a resume at step ``s`` re-seeds from ``seed + s``.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from sensorops.config_validation import STRICT_DATACLASS, StrictFloat


@dataclass(config=STRICT_DATACLASS)
class AugmentConfig:
    """The ``training.trainer.augment`` parameters (train split only)."""

    cutmix_prob: StrictFloat = Field(0.0, ge=0.0, le=1.0)
    """Probability that a training batch gets CutMix (a swapped time segment); 0 = off."""
    cutmix_alpha: StrictFloat = Field(1.0, gt=0.0)
    """Beta(alpha, alpha) of the swapped segment's share of the length."""
    mixup_prob: StrictFloat = Field(0.0, ge=0.0, le=1.0)
    """Probability of Mixup for a batch that did not get CutMix; 0 = off."""
    mixup_alpha: StrictFloat = Field(0.4, gt=0.0)
    """Beta(alpha, alpha) of the Mixup weight."""

    @property
    def enabled(self) -> bool:
        return self.cutmix_prob > 0 or self.mixup_prob > 0


def one_hot(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, n_classes).to(torch.float32)


def cutmix(
    x: torch.Tensor, y_soft: torch.Tensor, perm: torch.Tensor, start: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap ``x[:, start:start+width]`` with the partner ``x[perm]``; labels mixed by ``width/length``.

    Returns new tensors; the inputs are not modified.
    """
    length = x.shape[1]
    out = x.clone()
    out[:, start : start + width] = x[perm, start : start + width]
    share = width / length
    return out, (1.0 - share) * y_soft + share * y_soft[perm]


def mixup(
    x: torch.Tensor, y_soft: torch.Tensor, perm: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``lam x + (1 - lam) x[perm]``, labels likewise. Returns new tensors."""
    return lam * x + (1.0 - lam) * x[perm], lam * y_soft + (1.0 - lam) * y_soft[perm]


class BatchAugmenter:
    """Applies CutMix / Mixup to training batches with the configured probabilities.

    Args:
        cfg: the augmentation parameters.
        n_classes: width of the soft labels.
        seed: seed of this rank's generator (offset by rank by the caller).
    """

    def __init__(self, cfg: AugmentConfig, n_classes: int, seed: int) -> None:
        self.cfg = cfg
        self.n_classes = n_classes
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.counts = {"cutmix": 0, "mixup": 0, "none": 0}

    def reseed(self, step: int) -> None:
        """Deterministic stream from a given step (used on resume)."""
        self.rng = np.random.default_rng(self.seed + 7919 * step)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x', soft labels (batch, n_classes))`` for one training micro-batch."""
        y_soft = one_hot(y, self.n_classes).to(x.device)
        if len(y) < 2 or not self.cfg.enabled:
            self.counts["none"] += 1
            return x, y_soft
        perm = torch.from_numpy(self.rng.permutation(len(y))).to(x.device)
        if self.rng.random() < self.cfg.cutmix_prob:
            length = x.shape[1]
            share = float(self.rng.beta(self.cfg.cutmix_alpha, self.cfg.cutmix_alpha))
            width = int(round(share * length))
            if 0 < width:
                start = int(self.rng.integers(0, length - width + 1))
                self.counts["cutmix"] += 1
                return cutmix(x, y_soft, perm, start, width)
        if self.rng.random() < self.cfg.mixup_prob:
            lam = float(self.rng.beta(self.cfg.mixup_alpha, self.cfg.mixup_alpha))
            self.counts["mixup"] += 1
            return mixup(x, y_soft, perm, lam)
        self.counts["none"] += 1
        return x, y_soft
