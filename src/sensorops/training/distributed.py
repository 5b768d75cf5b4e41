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


# -- data-parallel strategies: ddp | zero1 | fsdp ---------------------------------------------


class ParallelStrategy:
    """How the model and optimizer are spread over the ranks (``training.trainer.strategy``).

    - ``ddp``: ``DistributedDataParallel``; every rank holds the full optimizer state.
    - ``zero1``: DDP for gradients plus ``torch.distributed.optim.ZeroRedundancyOptimizer``:
      each rank keeps the AdamW state of its share of the parameters (ZeRO stage 1).
    - ``fsdp``: FSDP2 ``torch.distributed.fsdp.fully_shard`` on a 1-D device mesh: parameters,
      gradients and optimizer state are sharded (ZeRO stage 3).

    Checkpoints are consolidated under every strategy: :meth:`model_state` and
    :meth:`optimizer_state` are collectives (every rank calls them) that return full, unsharded
    state dicts on rank 0, so a checkpoint exports and resumes the same whatever wrote it.
    Without a process group every strategy is the plain model and optimizer.
    """

    def __init__(self, name: str, ctx: DistContext) -> None:
        if name not in ("ddp", "zero1", "fsdp"):
            raise ValueError(
                f"training.trainer.strategy must be one of ['ddp', 'zero1', 'fsdp']; got {name!r}"
            )
        self.name = name
        self.ctx = ctx
        self.active = name if ctx.distributed else "none"

    # -- building ------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training step calls (``model`` itself keeps the bare parameters)."""
        if self.active in ("ddp", "zero1"):
            from torch.nn.parallel import DistributedDataParallel as DDP

            device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            return DDP(model, device_ids=device_ids)
        if self.active == "fsdp":
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh(self.ctx.device.type, (self.ctx.world_size,))
            # one FSDP unit for the whole model: these classifiers are small; a per-block wrap
            # only pays off when one block's full parameters would not fit on a device
            fully_shard(model, mesh=mesh)
        return model

    def optimizer(self, groups: list[dict], **kwargs: Any) -> torch.optim.Optimizer:
        """AdamW over ``groups`` (ZeRO-1-sharded under ``zero1``)."""
        if self.active == "zero1":
            from torch.distributed.optim import ZeroRedundancyOptimizer

            return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, **kwargs)
        return torch.optim.AdamW(groups, **kwargs)

    def no_sync(self, module: torch.nn.Module) -> Any:
        """Context for a micro-step whose gradients are not yet reduced (accumulation)."""
        import contextlib

        if self.active in ("ddp", "zero1"):
            return module.no_sync()
        if self.active == "fsdp":
            return _fsdp_no_sync(module)
        return contextlib.nullcontext()

    @staticmethod
    def local_norm(norm: torch.Tensor) -> torch.Tensor:
        """A plain tensor from ``clip_grad_norm_`` (FSDP2 returns a DTensor)."""
        full = getattr(norm, "full_tensor", None)
        return full() if callable(full) else norm

    # -- consolidated state ----------------------------------------------------------------
    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Full CPU state dict of the bare model (collective under fsdp)."""
        if self.active == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_model_state_dict(model, options=opts)
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}

    def optimizer_state(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any] | None:
        """Full optimizer state dict on rank 0 (``None`` elsewhere under zero1); collective."""
        if self.active == "zero1":
            optimizer.consolidate_state_dict(to=0)  # type: ignore[attr-defined]
            return optimizer.state_dict() if self.ctx.is_main else None
        if self.active == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_optimizer_state_dict(model, optimizer, options=opts)
        return optimizer.state_dict()

    def load(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        model_state: dict[str, Any],
        optimizer_state: dict[str, Any],
    ) -> None:
        """Load consolidated state on every rank (each keeps its shard)."""
        if self.active == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(model, model_state, options=opts)
            set_optimizer_state_dict(model, optimizer, optimizer_state, options=opts)
            return
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)


class _fsdp_no_sync:
    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.module.set_requires_gradient_sync(False)  # type: ignore[operator]

    def __exit__(self, *exc: object) -> None:
        self.module.set_requires_gradient_sync(True)  # type: ignore[operator]
