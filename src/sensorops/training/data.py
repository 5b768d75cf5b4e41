"""In-memory split tensors and per-rank batch iteration (DistributedSampler, resumable mid-epoch)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from sensorops.model_input import ModelInput


@dataclass(frozen=True)
class SplitTensors:
    """One split as tensors: ``X`` float32 ``(n, length, n_channels)``, ``y`` int64 ``(n,)``."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


def split_tensors(mi: ModelInput, split: str) -> SplitTensors:
    """Tensors (CPU) for one split of the model input."""
    x = torch.from_numpy(np.ascontiguousarray(mi.X[split], dtype=np.float32))
    y = torch.from_numpy(np.asarray(mi.y[split], dtype=np.int64))
    return SplitTensors(x, y)


class _IndexDataset(torch.utils.data.Dataset):
    """A sized stand-in for DistributedSampler (it only needs ``len``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class ShardedBatches:
    """Per-rank micro-batches of one epoch, from a ``DistributedSampler`` over the training split.

    Every rank sees ``ceil(n / world_size)`` samples per epoch (the sampler pads by repeating), so
    all ranks run the same number of steps. ``set_epoch`` reshuffles deterministically from
    ``seed + epoch``.
    """

    def __init__(
        self, n: int, micro_batch: int, world_size: int, rank: int, seed: int, shuffle: bool = True
    ) -> None:
        self.micro_batch = micro_batch
        self.sampler = DistributedSampler(
            _IndexDataset(n),
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        """Micro-batches per epoch on this rank."""
        return math.ceil(self.sampler.num_samples / self.micro_batch)

    def samples_in(self, first: int, count: int) -> int:
        """Distinct training samples in micro-batches ``[first, first + count)`` over all ranks.

        The sampler pads each epoch to a multiple of the world size by repeating samples, and the
        last micro-batch of an epoch can be short; this counts neither the repeats nor missing
        rows. Rank ``r``'s ``k``-th sample sits at position ``r + k * world`` of the padded
        order, a repeat when that position is past the real ``n``.
        """
        world, n, m = self.sampler.num_replicas, len(self.sampler.dataset), self.micro_batch
        lo, hi = first * m, min((first + count) * m, self.sampler.num_samples)
        return sum(max(0, min(hi, len(range(r, n, world))) - lo) for r in range(world))

    def iter_from(self, skip: int = 0) -> Iterator[torch.Tensor]:
        """Index tensors of this epoch's micro-batches, skipping the first ``skip`` (for resume)."""
        idx = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        for b in range(skip, len(self)):
            yield idx[b * self.micro_batch : (b + 1) * self.micro_batch]


def shard_indices(n: int, world_size: int, rank: int) -> torch.Tensor:
    """Disjoint, unpadded evaluation shard ``rank::world_size`` of ``range(n)``."""
    return torch.arange(rank, n, world_size, dtype=torch.long)
