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

    def iter_from(self, skip: int = 0) -> Iterator[torch.Tensor]:
        """Index tensors of this epoch's micro-batches, skipping the first ``skip`` (for resume)."""
        idx = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        for b in range(skip, len(self)):
            yield idx[b * self.micro_batch : (b + 1) * self.micro_batch]


def shard_indices(n: int, world_size: int, rank: int) -> torch.Tensor:
    """Disjoint, unpadded evaluation shard ``rank::world_size`` of ``range(n)``."""
    return torch.arange(rank, n, world_size, dtype=torch.long)
