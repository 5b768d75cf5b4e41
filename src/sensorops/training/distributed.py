"""Process-group setup inside one worker, from the environment torchrun / elastic_launch set.

Without ``WORLD_SIZE`` in the environment the worker runs alone (no process group), so the same
code trains in a plain ``python -m sensorops.training.train`` and in unit tests.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this worker sits: global/local rank, world size, device and backend."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None
    """``None`` when running as a single process without a process group."""
    host: str

    @property
    def is_main(self) -> bool:
        """True on global rank 0, the only rank that writes files and logs training metrics."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def resolve_backend(requested: str, cuda: bool) -> str:
    """``auto`` -> nccl when workers use CUDA devices, gloo otherwise."""
    if requested == "auto":
        return "nccl" if cuda else "gloo"
    if requested == "nccl" and not cuda:
        raise ValueError(
            "training.trainer.launch.backend 'nccl' needs CUDA devices; none are visible (use gloo)"
        )
    return requested


def setup_distributed(backend: str = "auto", timeout_s: float | None = None) -> DistContext:
    """Initialise the default process group from ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``... env vars.

    Picks ``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    chosen: str | None = None
    if "WORLD_SIZE" in os.environ:
        chosen = resolve_backend(backend, cuda)
        if not dist.is_initialized():
            kwargs: dict[str, Any] = {"backend": chosen}
            if timeout_s is not None:
                kwargs["timeout"] = datetime.timedelta(seconds=timeout_s)
            if chosen == "nccl":
                kwargs["device_id"] = device
            store = _attempt_store(world_size, kwargs.get("timeout"))
            if store is not None:
                kwargs.update(store=store, rank=rank, world_size=world_size)
            dist.init_process_group(**kwargs)
    ctx = DistContext(rank, local_rank, world_size, device, chosen, socket.gethostname())
    logger.info(
        "worker rank %d/%d (local %d) on %s, backend %s",
        rank,
        world_size,
        local_rank,
        device,
        chosen,
    )
    return ctx


def _attempt_store(world_size: int, timeout: datetime.timedelta | None) -> dist.Store | None:
    """The launcher agent's store, namespaced by restart attempt; ``None`` outside torchelastic.

    Under torchrun / elastic_launch the workers of every attempt share the agent's TCPStore and
    ``env://`` uses the same key prefix each time, so after a restart a rank can read the gloo/NCCL
    address its dead predecessor published and hang or fail connecting ("Connection refused").
    A prefix per ``TORCHELASTIC_RESTART_COUNT`` gives each attempt fresh keys.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true":
        return None
    client = dist.TCPStore(
        host_name=os.environ["MASTER_ADDR"],
        port=int(os.environ["MASTER_PORT"]),
        world_size=world_size,
        is_master=False,
        timeout=timeout or datetime.timedelta(minutes=30),
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"sensorops/attempt_{attempt}", client)


def teardown_distributed() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, ctx: DistContext, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (identity without a process group)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` without a process group)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op without a process group)."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
