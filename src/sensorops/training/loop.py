"""The training loop of one worker: DDP, precision, accumulation, clipping, validation,
early stopping, epoch-end checkpoints (rank 0) and automatic resume.

Everything else around the step is a :mod:`~sensorops.training.callbacks` callback: the MLflow
metrics window, the progress bar, the step-cadence checkpoint, and whatever a caller passes in
(fault injection in the restart tests, a hyperparameter search reporting intermediate values).
Two plug points serve data-side extensions without touching the loop:

- ``batch_transform(x, y) -> (x, target)`` runs on every micro-batch after it reaches the device
  and before the forward pass (CutMix/Mixup: ``target`` may be class probabilities
  ``(batch, n_classes)``; :class:`torch.nn.CrossEntropyLoss` takes both);
- ``batches``: any object with ``set_epoch(epoch)``, ``__len__()`` (micro-batches per epoch on this
  rank) and ``iter_from(skip)`` yielding index tensors, in place of the default
  :class:`~sensorops.training.data.ShardedBatches` (a curriculum sampler). It must give every rank
  the same number of micro-batches, and be deterministic in ``epoch`` for mid-epoch resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from sensorops.architectures import ModelSpec, build_model, count_parameters
from sensorops.model_input import ModelInput, model_input_digests
from sensorops.training.augment import BatchAugmenter
from sensorops.training.callbacks import (
    Callback,
    MetricsLogger,
    PeriodicCheckpoint,
    ProgressBar,
    StepOutput,
    overrides,
)
from sensorops.training.checkpoint import (
    BEST,
    LAST,
    checkpoint_dir,
    fingerprint,
    load_resume_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from sensorops.training.config import TrainingConfig
from sensorops.training.curriculum import Curriculum
from sensorops.training.data import ShardedBatches, SplitTensors, shard_indices, split_tensors
from sensorops.training.distributed import (
    DistContext,
    ParallelStrategy,
    all_reduce_sum,
    barrier,
    broadcast_object,
    gather_object,
)
from sensorops.training.metrics import metrics_from_confusion
from sensorops.training.optim import build_optimizer, build_scheduler, param_groups
from sensorops.training.precision import resolve_precision
from sensorops.training.run_logging import RunLogger

logger = logging.getLogger(__name__)

LOWER_IS_BETTER = {"val_loss"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plan_steps(cfg: TrainingConfig, steps_per_epoch: int) -> tuple[int, int]:
    """``(total optimizer steps, epoch limit)``: ``max_steps`` when set (epochs still bound it),
    else ``max(epochs x steps_per_epoch, min_steps)``, with as many epochs as that needs."""
    if cfg.loop.max_steps is not None:
        return cfg.loop.max_steps, cfg.loop.epochs
    total = max(cfg.loop.epochs * steps_per_epoch, cfg.loop.min_steps or 0)
    return total, max(cfg.loop.epochs, math.ceil(total / steps_per_epoch))


def micro_batch_size(cfg: TrainingConfig, world_size: int) -> int:
    """Per-rank micro-batch: global batch / (world size x accumulation steps)."""
    denom = world_size * cfg.optimizer.grad_accum_steps
    if cfg.data.batch_size < denom:
        raise ValueError(
            f"training.trainer.data.batch_size={cfg.data.batch_size} (the global batch) is smaller than "
            f"world size {world_size} x grad_accum_steps {cfg.optimizer.grad_accum_steps} = {denom}"
        )
    return cfg.data.batch_size // denom


def maybe_sync_batchnorm(
    model: nn.Module, enabled: bool, device: torch.device, distributed: bool
) -> nn.Module:
    """SyncBatchNorm conversion when asked for, on CUDA with a process group; else ``model`` unchanged."""
    if not enabled:
        return model
    if device.type != "cuda" or not distributed:
        logger.warning(
            "sync_batchnorm needs CUDA and >1 worker; keeping plain BatchNorm on %s", device
        )
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def data_fingerprint(mi: ModelInput) -> dict[str, Any]:
    """What identifies the model input for resume: classes, channels, shapes and content digests.

    The per-split content digests (:func:`sensorops.model_input.model_input_digests`) make a re-run
    on different data of the same shape start fresh instead of resuming a finished checkpoint.
    """
    return {
        "classes": list(mi.classes),
        "channels": list(mi.channels),
        "shapes": {s: list(mi.X[s].shape) for s in mi.X},
        "digests": model_input_digests(mi),
    }


def _to_device(split: SplitTensors, device: torch.device, limit_bytes: int = 2**31) -> SplitTensors:
    """Keep a split resident on the GPU when it is small enough (no per-step host copies)."""
    if device.type != "cuda" or split.X.element_size() * split.X.nelement() > limit_bytes:
        return split
    return SplitTensors(split.X.to(device), split.y.to(device))


@dataclass
class TrainState:
    """Counters that a checkpoint restores."""

    step: int = 0
    epoch: int = 0
    epoch_steps_done: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_val_loss: float | None = None
    bad_epochs: int = 0
    completed: bool = False
    history: list[dict[str, float | None]] = field(default_factory=list)


class BatchSchedule(Protocol):
    """What the loop needs from a per-rank sampler of micro-batch indices."""

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def iter_from(self, skip: int = 0) -> Iterator[torch.Tensor]: ...


BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(x, y) -> (x, target)`` on the device, before the forward pass (see the module docstring)."""


@dataclass(frozen=True)
class _StopRequest:
    reason: str
    finish: bool


def default_callbacks(cfg: TrainingConfig, run_logger: RunLogger | None) -> list[Callback]:
    """What the config asks for: the step-cadence checkpoint, the progress bar and, with a logger,
    the MLflow metrics window (rank 0 only)."""
    callbacks: list[Callback] = []
    if cfg.checkpoint.every_n_steps:
        callbacks.append(PeriodicCheckpoint(cfg.checkpoint.every_n_steps))
    if cfg.progress_bar != "never":
        callbacks.append(ProgressBar(cfg.progress_bar))
    if run_logger is not None and run_logger.ctx.is_main:
        callbacks.append(MetricsLogger(run_logger, cfg.mlflow.log_every_n_steps))
    return callbacks


class Trainer:
    """Trains one model in one worker process; all ranks construct one and call :meth:`fit`.

    Args:
        cfg: the resolved training config.
        ctx: this worker's distributed context.
        mi: the model input (every rank holds the arrays; DistributedSampler shards them).
        run_logger: MLflow logger (started by the caller); ``None`` for no tracking.
        callbacks: called after :func:`default_callbacks` (same list, same order on every rank).
        batch_transform: ``(x, y) -> (x, target)`` per training micro-batch (CutMix/Mixup).
        batches: a :class:`BatchSchedule` replacing the default shuffled shards.
    """

    def __init__(
        self,
        cfg: TrainingConfig,
        ctx: DistContext,
        mi: ModelInput,
        run_logger: RunLogger | None = None,
        callbacks: Sequence[Callback] = (),
        *,
        batch_transform: BatchTransform | None = None,
        batches: BatchSchedule | None = None,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.mi = mi
        self.run_logger = run_logger
        self.output_dir = Path(cfg.output_dir)
        self.ckpt_dir = checkpoint_dir(self.output_dir)
        self.spec = ModelSpec(
            name=cfg.model.name,
            n_channels=mi.n_channels,
            n_classes=mi.n_classes,
            length=mi.length,
            hidden=cfg.model.hidden,
            layers=cfg.model.layers,
            dropout=cfg.model.dropout,
            heads=cfg.model.heads,
        )
        self.fingerprint = fingerprint(
            {"config": cfg.fingerprint_dict(), "data": data_fingerprint(mi)}
        )
        self.policy = resolve_precision(cfg.precision, ctx.device)
        self.train = _to_device(split_tensors(mi, "train"), ctx.device)
        self.val = _to_device(split_tensors(mi, "val"), ctx.device)
        self.micro = micro_batch_size(cfg, ctx.world_size)
        self.accum = cfg.optimizer.grad_accum_steps
        self.global_batch = self.micro * ctx.world_size * self.accum
        self.batches: BatchSchedule = batches or ShardedBatches(
            len(self.train), self.micro, ctx.world_size, ctx.rank, cfg.seed
        )
        self.batch_transform = batch_transform
        self.steps_per_epoch = max(1, math.ceil(len(self.batches) / self.accum))
        self.total_steps, self.max_epochs = plan_steps(cfg, self.steps_per_epoch)
        # validate (and pick the best checkpoint) every epoch, or every k epochs on tiny data
        self.epochs_per_eval = max(
            1, math.ceil((cfg.loop.eval_every_n_steps or 1) / self.steps_per_epoch)
        )
        self.callbacks: list[Callback] = [*default_callbacks(cfg, run_logger), *callbacks]

        seed_everything(cfg.seed)  # identical initial weights on every rank
        model = build_model(self.spec).to(ctx.device)
        model = maybe_sync_batchnorm(model, cfg.loop.sync_batchnorm, ctx.device, ctx.distributed)
        self.model = model
        self.strategy = ParallelStrategy(cfg.strategy, ctx)
        self.ddp: nn.Module = self.strategy.wrap(model)  # DDP, DDP + ZeRO-1, or FSDP2 in place
        if self.strategy.active in ("zero1", "fsdp"):
            o = cfg.optimizer
            self.optimizer = self.strategy.optimizer(
                param_groups(model, o.weight_decay), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps
            )
        else:
            self.optimizer = build_optimizer(model, cfg.optimizer)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg.schedule)
        self.scaler = self.policy.make_scaler()
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.loop.label_smoothing)
        # train-split-only hooks: CutMix/Mixup on each micro-batch, curriculum on its indices
        self.augmenter = BatchAugmenter(cfg.augment, mi.n_classes, cfg.seed + 1000 * ctx.rank + 2)
        self.curriculum = (
            Curriculum(
                cfg.curriculum, mi.X["train"], mi.y["train"], self.total_steps, cfg.seed + ctx.rank
            )
            if cfg.curriculum.enabled
            else None
        )
        self.state = TrainState()
        self.resumed_from_step: int | None = None
        self._stop: _StopRequest | None = None
        self._stopped_early = False
        self._validation_seconds = 0.0
        self._validation_cpu_seconds = 0.0
        self._checkpoint_seconds = 0.0
        self._checkpoint_cpu_seconds = 0.0
        # this rank's sum of step losses in the current epoch (on device, no sync) and step count
        self._epoch_loss = torch.zeros((), dtype=torch.float64, device=ctx.device)
        self._epoch_steps = 0
        self._x_on_device = self.train.X.device == ctx.device
        seed_everything(cfg.seed + 1000 * ctx.rank + 1)  # per-rank randomness (dropout)

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Model (full CPU copy), optimizer (full on rank 0), scheduler, scaler and loop counters.

        Collective under ``zero1``/``fsdp`` (every rank must call it): the strategy consolidates
        the sharded model and optimizer state."""
        return {
            "model_state": self.strategy.model_state(self.model),
            "optimizer": self.strategy.optimizer_state(self.model, self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "train_state": dataclasses.asdict(self.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, or a checkpoint: with its ``rng`` list (one
        entry per rank of the run that saved it) this rank's RNG states come back too; from a run
        of another world size the per-rank seed rule is re-applied at the saved step instead."""
        self.strategy.load(self.model, self.optimizer, state["model_state"], state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        ts = state["train_state"]
        self.state = TrainState(**{**ts, "history": list(ts["history"])})
        rng = state.get("rng")
        if rng is not None and len(rng) == self.ctx.world_size:
            set_rng_state(rng[self.ctx.rank], self.ctx.device)
        elif rng is not None:
            seed_everything(self.cfg.seed + 1000 * self.ctx.rank + 1 + self.state.step)

    # -- checkpoints -----------------------------------------------------------------------
    def _checkpoint_state(
        self, rng_all: list[Any], val_metric: float | None, state: dict[str, Any]
    ) -> dict[str, Any]:
        s = self.state
        return {
            "model_spec": self.spec.to_dict(),
            **state,  # model/optimizer consolidated (full) under every strategy
            "rng": rng_all,
            "config": self.cfg.to_dict(),
            "metadata": {
                "classes": list(self.mi.classes),
                "channels": list(self.mi.channels),
                "length": self.mi.length,
                "step": s.step,
                "epoch": s.epoch,
                "fingerprint": self.fingerprint,
                "val_metric_name": self.cfg.loop.early_stopping_metric,
                "val_metric": val_metric,
                "precision": self.policy.mode,
                "world_size": self.ctx.world_size,
                "normalization": self.mi.metadata.get("normalization"),
            },
        }

    def save(self, which: tuple[str, ...], val_metric: float | None = None) -> None:
        """Collective: gathers every rank's RNG state; rank 0 writes the named checkpoint files."""
        t0, c0 = time.perf_counter(), time.process_time()
        rng_all = gather_object(rng_state(self.ctx.device), self.ctx)
        trainer_state = self.state_dict()  # collectives under zero1/fsdp
        if self.ctx.is_main:
            state = self._checkpoint_state(rng_all, val_metric, trainer_state)
            for name in which:
                save_checkpoint(self.ckpt_dir / name, state)
        barrier(self.ctx)
        self._checkpoint_seconds += time.perf_counter() - t0
        self._checkpoint_cpu_seconds += time.process_time() - c0

    def save_last(self) -> None:
        """Collective: write ``last.pt`` (the step-cadence checkpoint)."""
        self.save((LAST,))

    def resume(self) -> None:
        """Load ``last.pt`` (rank 0 reads, broadcasts) when the resume policy allows."""
        ckpt = None
        if self.ctx.is_main:
            ckpt = load_resume_state(self.output_dir, self.fingerprint, self.cfg.checkpoint.resume)
        ckpt = broadcast_object(ckpt, self.ctx)
        if ckpt is None:
            return
        self.load_state_dict(ckpt)
        self.resumed_from_step = self.state.step
        self.augmenter.reseed(self.state.step)
        logger.info(
            "rank %d resumed from step %d (epoch %d)",
            self.ctx.rank,
            self.state.step,
            self.state.epoch,
        )

    def request_stop(self, reason: str, *, finish: bool = True) -> None:
        """Stop after the current step or evaluation (see :mod:`sensorops.training.callbacks`).

        ``finish=True``: write ``last.pt`` and return the summary with ``stopped_by=reason``;
        ``finish=False``: return at once as an interrupted run, writing nothing more.
        """
        if self._stop is None:
            self._stop = _StopRequest(reason, finish)

    # -- validation ------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss/accuracy/macro-F1 over the whole val split (sharded, all-reduced)."""
        self.model.eval()
        n_classes = self.mi.n_classes
        idx = shard_indices(len(self.val), self.ctx.world_size, self.ctx.rank)
        cm = torch.zeros(n_classes * n_classes + 1, dtype=torch.float64, device=self.ctx.device)
        loss_fn = nn.CrossEntropyLoss(reduction="sum")
        for start in range(0, len(idx), self.cfg.data.eval_batch_size):
            sel = idx[start : start + self.cfg.data.eval_batch_size]
            sel = sel.to(self.val.X.device)
            x = self.val.X[sel].to(self.ctx.device, non_blocking=True)
            y = self.val.y[sel].to(self.ctx.device, non_blocking=True)
            with self.policy.autocast():
                logits = self.model(x)
            cm[-1] += loss_fn(logits.float(), y).double()
            flat = y * n_classes + logits.argmax(dim=1)
            cm[:-1] += torch.bincount(flat, minlength=n_classes * n_classes).double()
        all_reduce_sum(cm, self.ctx)
        self.model.train()
        counts = cm[:-1].reshape(n_classes, n_classes).cpu().numpy()
        m = metrics_from_confusion(counts)
        return {
            "val_loss": float(cm[-1].item() / max(counts.sum(), 1)),
            "val_accuracy": m["accuracy"],
            "val_macro_f1": m["macro_f1"],
        }

    def _improved(self, value: float, val_loss: float | None = None) -> bool:
        best = self.state.best_metric
        if best is None:
            return True
        delta = self.cfg.loop.min_delta
        if self.cfg.loop.early_stopping_metric in LOWER_IS_BETTER:
            better = value < best - delta
        else:
            better = value > best + delta
        if better or value != best:
            return better
        # a tie with the best: broken by validation loss, or by preferring the later checkpoint
        tie_break = self.cfg.loop.tie_break
        if tie_break == "later":
            return True
        if tie_break == "val_loss" and val_loss is not None:
            return self.state.best_val_loss is None or val_loss < self.state.best_val_loss
        return False

    # -- training --------------------------------------------------------------------------
    def _optimizer_step(self, micro_idx: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step over ``len(micro_idx)`` micro-batches; returns (loss, grad norm) tensors."""
        n = len(micro_idx)
        total: torch.Tensor | None = None
        device = self.ctx.device
        for i, sel in enumerate(micro_idx):
            if self.curriculum is not None:
                sel = self.curriculum.restrict(sel, self.state.step)
            if self._x_on_device:
                sel = sel.to(device, non_blocking=True)
                x, y = self.train.X[sel], self.train.y[sel]
            else:
                x = self.train.X[sel].to(device, non_blocking=True)
                y = self.train.y[sel].to(device, non_blocking=True)
            if self.cfg.augment.enabled:
                x, y = self.augmenter(x, y)  # soft labels (batch, n_classes)
            if self.batch_transform is not None:
                x, y = self.batch_transform(x, y)
            sync = contextlib.nullcontext()
            if self.ctx.distributed and i < n - 1:
                sync = self.strategy.no_sync(self.ddp)
            with sync:
                with self.policy.autocast():
                    loss = self.loss_fn(self.ddp(x), y)
                    if n > 1:
                        loss = loss / n
                self.scaler.scale(loss).backward()
            part = loss.detach()
            total = part if total is None else total + part
        assert total is not None  # a group always holds at least one micro-batch
        return total.float(), self._apply_gradients()

    def _apply_gradients(self) -> torch.Tensor:
        """Unscale, clip at the global norm, step (skipped by the fp16 scaler on inf/nan), update."""
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optimizer.grad_clip_norm
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), clip if clip is not None else float("inf")
        )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return self.strategy.local_norm(norm.detach())

    def _hooks(self, name: str) -> list[Callback]:
        return [cb for cb in self.callbacks if overrides(cb, name)]

    def fit(self) -> dict[str, Any]:
        """Train to the end (or until a callback stops it); returns the run summary (all ranks)."""
        self.resume()
        s = self.state
        step_hooks = self._hooks("on_step_end")
        if self.run_logger is not None and self.ctx.is_main:
            self.run_logger.set_tags(
                {
                    "model.params": count_parameters(self.model),
                    "precision": self.policy.mode,
                    "world_size": self.ctx.world_size,
                }
            )
        barrier(self.ctx)  # every rank starts the clock together
        samples, busy = 0, 0.0
        started = time.perf_counter()
        self._cpu_started = time.process_time()
        self.model.train()
        for cb in self._hooks("on_fit_start"):
            cb.on_fit_start(self)
        while not s.completed and s.epoch < self.max_epochs and s.step < self.total_steps:
            n, seconds = self._train_epoch(step_hooks)
            samples, busy = samples + n, busy + seconds
            if self._stop is not None and not self._stop.finish:
                return self._finish(started, samples, busy, interrupted=True)
            if self._stop is not None:
                break
            for cb in self._hooks("on_epoch_end"):
                cb.on_epoch_end(self, s.epoch)
            if (
                (s.epoch + 1) % self.epochs_per_eval
                and s.step < self.total_steps
                and s.epoch + 1 < self.max_epochs
            ):
                s.epoch, s.epoch_steps_done = s.epoch + 1, 0  # no validation in this epoch
                continue
            if self._end_epoch():
                break
        s.completed = True
        self.save((LAST,))
        return self._finish(started, samples, busy)

    def _train_epoch(self, step_hooks: list[Callback]) -> tuple[int, float]:
        """The rest of the current epoch (or until a stop request); returns (samples, step seconds)."""
        s = self.state
        samples, busy = 0, 0.0
        self.batches.set_epoch(s.epoch)
        first = s.epoch_steps_done * self.accum
        micro_iter = self.batches.iter_from(skip=first)
        exact = getattr(self.batches, "samples_in", None)  # custom schedules: the nominal batch
        while s.step < self.total_steps:
            group = [b for _, b in zip(range(self.accum), micro_iter, strict=False)]
            if not group:
                break
            t0 = time.perf_counter()
            loss, norm = self._optimizer_step(group)
            s.step += 1
            s.epoch_steps_done += 1
            busy += time.perf_counter() - t0
            samples += int(exact(first, len(group))) if exact else self.global_batch
            first += len(group)
            self._epoch_loss.add_(loss)
            self._epoch_steps += 1
            if step_hooks:
                lr = self.scheduler.get_last_lr()[0]
                out = StepOutput(s.step, s.epoch, loss, norm, lr, self.global_batch)
                for cb in step_hooks:
                    cb.on_step_end(self, out)
            if self._stop is not None:
                break
        return samples, busy

    def _end_epoch(self) -> bool:
        """Validate, keep the best, checkpoint, decide early stopping (same decision on all ranks);
        True when the loop stops (early stopping or a callback's request, agreed over ranks)."""
        s, cfg = self.state, self.cfg
        t0, c0 = time.perf_counter(), time.process_time()
        metrics = self.validate()
        self._validation_seconds += time.perf_counter() - t0
        self._validation_cpu_seconds += time.process_time() - c0
        metrics["epoch"] = float(s.epoch)
        if self.curriculum is not None:
            metrics["curriculum_pool_fraction"] = self.curriculum.fraction(s.step)
        s.history.append({"step": float(s.step), "train_loss": self._mean_epoch_loss(), **metrics})
        value = metrics[cfg.loop.early_stopping_metric]
        improved = self._improved(value, metrics["val_loss"])
        if improved:
            s.best_metric, s.best_step, s.bad_epochs = value, s.step, 0
            s.best_val_loss = metrics["val_loss"]
        else:
            s.bad_epochs += 1
        s.epoch += 1
        s.epoch_steps_done = 0
        patience = cfg.loop.early_stopping_patience
        stop = (
            patience is not None
            and s.bad_epochs >= patience
            and s.step >= (cfg.loop.min_steps or 0)
        )
        if stop:
            s.completed = True
            self._stopped_early = True
        self.save((LAST, BEST) if improved else (LAST,), val_metric=value)
        reported = {**metrics, f"best_{cfg.loop.early_stopping_metric}": s.best_metric}
        for cb in self._hooks("on_eval_end"):
            cb.on_eval_end(self, s.step, reported)
        if self.ctx.is_main:
            logger.info(
                "epoch %d step %d: %s%s",
                s.epoch,
                s.step,
                json.dumps(metrics),
                " (best)" if improved else "",
            )
        return self._agree_on_stop() or stop

    def _agree_on_stop(self) -> bool:
        """True on every rank when a callback on any rank asked to stop (one all-reduce)."""
        flag = torch.tensor(
            [0.0 if self._stop is None else 1.0], dtype=torch.float64, device=self.ctx.device
        )
        all_reduce_sum(flag, self.ctx)
        if flag.item() > 0 and self._stop is None:
            self._stop = _StopRequest("stop requested on another rank", True)
        return self._stop is not None

    def _mean_epoch_loss(self) -> float | None:
        """Mean training loss of the epoch's steps over all ranks (steps since a resume only);
        resets the accumulator. ``None`` when no step ran (e.g. resumed at the epoch's end)."""
        count = torch.full(
            (), float(self._epoch_steps), dtype=torch.float64, device=self.ctx.device
        )
        totals = torch.stack([self._epoch_loss, count])
        all_reduce_sum(totals, self.ctx)
        self._epoch_loss.zero_()
        self._epoch_steps = 0
        loss_sum, count = totals.tolist()
        return loss_sum / count if count else None

    def _finish(
        self, started: float, samples: int, busy: float, interrupted: bool = False
    ) -> dict[str, Any]:
        summary = self._summary(started, samples, busy, interrupted)
        for cb in self._hooks("on_fit_end"):
            cb.on_fit_end(self, summary)
        return summary

    def _summary(
        self, started: float, samples: int, busy: float, interrupted: bool = False
    ) -> dict[str, Any]:
        s = self.state
        loop_seconds = time.perf_counter() - started
        train_seconds = loop_seconds - self._validation_seconds
        return {
            "model_name": self.spec.name,
            "model_spec": self.spec.to_dict(),
            "best_checkpoint": str(self.ckpt_dir / BEST),
            "last_checkpoint": str(self.ckpt_dir / LAST),
            "best_val_metric": s.best_metric,
            "best_val_metric_name": self.cfg.loop.early_stopping_metric,
            "best_step": s.best_step,
            "final_step": s.step,
            "total_steps": self.total_steps,
            "epochs_completed": s.epoch,
            "resumed_from_step": self.resumed_from_step,
            "stopped_early": self._stopped_early,
            "stopped_by": self._stop.reason if self._stop is not None else None,
            "interrupted": interrupted,
            "world_size": self.ctx.world_size,
            "precision": self.policy.mode,
            "global_batch_size": self.global_batch,
            "train_samples_per_s": samples / train_seconds
            if samples and train_seconds > 0
            else None,
            "step_compute_samples_per_s": samples / busy if busy > 0 else None,
            "samples_trained": samples,
            "loop_seconds": loop_seconds,
            "validation_seconds": self._validation_seconds,
            "checkpoint_seconds": self._checkpoint_seconds,
            "checkpoint_cpu_seconds": self._checkpoint_cpu_seconds,
            # CPU seconds of this process (all its threads) in the loop, without validation:
            # a throughput measure that other tenants of the machine do not distort
            "train_cpu_seconds": time.process_time()
            - self._cpu_started
            - self._validation_cpu_seconds,
            "history": s.history,
            "fingerprint": self.fingerprint,
        }
