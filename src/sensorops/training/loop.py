"""The training loop of one worker: DDP, precision, accumulation, clipping, validation,
early stopping, checkpoints (rank 0) and automatic resume."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sensorops.architectures import ModelSpec, build_model, count_parameters
from sensorops.model_input import ModelInput, model_input_digests
from sensorops.training.augment import BatchAugmenter
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
from sensorops.training.faults import maybe_die
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


class Trainer:
    """Trains one model in one worker process; all ranks construct one and call :meth:`fit`.

    Args:
        cfg: the resolved training config.
        ctx: this worker's distributed context.
        mi: the model input (every rank holds the arrays; DistributedSampler shards them).
        run_logger: MLflow logger (started by the caller); ``None`` for no tracking.
    """

    def __init__(
        self,
        cfg: TrainingConfig,
        ctx: DistContext,
        mi: ModelInput,
        run_logger: RunLogger | None = None,
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
        self.batches = ShardedBatches(
            len(self.train), self.micro, ctx.world_size, ctx.rank, cfg.seed
        )
        self.steps_per_epoch = max(1, math.ceil(len(self.batches) / self.accum))
        self.total_steps, self.max_epochs = plan_steps(cfg, self.steps_per_epoch)
        # validate (and pick the best checkpoint) every epoch, or every k epochs on tiny data
        self.epochs_per_eval = max(
            1, math.ceil((cfg.loop.eval_every_n_steps or 1) / self.steps_per_epoch)
        )

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
        self._validation_seconds = 0.0
        self._validation_cpu_seconds = 0.0
        self._checkpoint_seconds = 0.0
        # sum of this rank's step losses and step count in the current epoch (on device, no sync)
        self._epoch_loss = torch.zeros(2, dtype=torch.float64, device=ctx.device)
        seed_everything(cfg.seed + 1000 * ctx.rank + 1)  # per-rank randomness (dropout)

    # -- checkpoints -----------------------------------------------------------------------
    def _checkpoint_state(
        self,
        rng_all: list[Any],
        val_metric: float | None,
        model_state: dict[str, Any],
        optimizer_state: dict[str, Any] | None,
    ) -> dict[str, Any]:
        s = self.state
        return {
            "model_spec": self.spec.to_dict(),
            "model_state": model_state,  # consolidated (full) under every strategy
            "optimizer": optimizer_state,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_all,
            "config": self.cfg.to_dict(),
            "train_state": {
                "step": s.step,
                "epoch": s.epoch,
                "epoch_steps_done": s.epoch_steps_done,
                "best_metric": s.best_metric,
                "best_step": s.best_step,
                "best_val_loss": s.best_val_loss,
                "bad_epochs": s.bad_epochs,
                "completed": s.completed,
                "history": s.history,
            },
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
        t0 = time.perf_counter()
        rng_all = gather_object(rng_state(self.ctx.device), self.ctx)
        model_state = self.strategy.model_state(self.model)  # collectives under zero1/fsdp
        optimizer_state = self.strategy.optimizer_state(self.model, self.optimizer)
        if self.ctx.is_main:
            state = self._checkpoint_state(rng_all, val_metric, model_state, optimizer_state)
            for name in which:
                save_checkpoint(self.ckpt_dir / name, state)
        barrier(self.ctx)
        self._checkpoint_seconds += time.perf_counter() - t0

    def resume(self) -> None:
        """Load ``last.pt`` (rank 0 reads, broadcasts) when the resume policy allows."""
        ckpt = None
        if self.ctx.is_main:
            ckpt = load_resume_state(self.output_dir, self.fingerprint, self.cfg.checkpoint.resume)
        ckpt = broadcast_object(ckpt, self.ctx)
        if ckpt is None:
            return
        self.strategy.load(self.model, self.optimizer, ckpt["model_state"], ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        ts = ckpt["train_state"]
        self.state = TrainState(**{**ts, "history": list(ts["history"])})
        rng = ckpt["rng"]
        if len(rng) == self.ctx.world_size:
            set_rng_state(rng[self.ctx.rank], self.ctx.device)
        else:
            seed_everything(self.cfg.seed + 1000 * self.ctx.rank + 1 + self.state.step)
        self.resumed_from_step = self.state.step
        self.augmenter.reseed(self.state.step)
        logger.info(
            "rank %d resumed from step %d (epoch %d)",
            self.ctx.rank,
            self.state.step,
            self.state.epoch,
        )

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
        total = torch.zeros((), device=self.ctx.device)
        for i, sel in enumerate(micro_idx):
            if self.curriculum is not None:
                sel = self.curriculum.restrict(sel, self.state.step)
            sel = sel.to(self.train.X.device)
            x = self.train.X[sel].to(self.ctx.device, non_blocking=True)
            y = self.train.y[sel].to(self.ctx.device, non_blocking=True)
            if self.cfg.augment.enabled:
                x, y = self.augmenter(x, y)  # soft labels (batch, n_classes)
            sync = contextlib.nullcontext()
            if self.ctx.distributed and i < n - 1:
                sync = self.strategy.no_sync(self.ddp)
            with sync:
                with self.policy.autocast():
                    loss = self.loss_fn(self.ddp(x), y) / n
                self.scaler.scale(loss).backward()
            total += loss.detach().float()
        return total, self._apply_gradients()

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

    def fit(self, stop_after_step: int | None = None) -> dict[str, Any]:
        """Train to the end (or to ``stop_after_step``, for tests); returns the run summary (all ranks)."""
        self.resume()
        s = self.state
        cfg = self.cfg
        global_batch = self.micro * self.ctx.world_size * self.accum
        bar = self._progress_bar()
        pending: list[tuple[int, torch.Tensor, torch.Tensor, float]] = []
        samples, busy = 0, 0.0
        started = time.perf_counter()
        self._cpu_started = time.process_time()
        self._tp_mark = (started, s.step)
        self.model.train()
        if self.run_logger is not None and self.ctx.is_main:
            self.run_logger.set_tags(
                {
                    "model.params": count_parameters(self.model),
                    "precision": self.policy.mode,
                    "world_size": self.ctx.world_size,
                }
            )
        while not s.completed and s.epoch < self.max_epochs and s.step < self.total_steps:
            self.batches.set_epoch(s.epoch)
            micro_iter = self.batches.iter_from(skip=s.epoch_steps_done * self.accum)
            while s.step < self.total_steps:
                group = [b for _, b in zip(range(self.accum), micro_iter, strict=False)]
                if not group:
                    break
                t0 = time.perf_counter()
                loss, norm = self._optimizer_step(group)
                s.step += 1
                s.epoch_steps_done += 1
                dt = time.perf_counter() - t0
                samples += global_batch
                busy += dt
                pending.append((s.step, loss, norm, self.scheduler.get_last_lr()[0]))
                self._epoch_loss[0] += loss.double()
                self._epoch_loss[1] += 1
                if s.step % cfg.mlflow.log_every_n_steps == 0:
                    self._log_pending(pending, global_batch)
                    pending = []
                if bar is not None:
                    bar.update(1)
                if cfg.checkpoint.every_n_steps and s.step % cfg.checkpoint.every_n_steps == 0:
                    self.save((LAST,))
                maybe_die(self.ctx.rank, s.step)
                if stop_after_step is not None and s.step >= stop_after_step:
                    return self._summary(started, samples, busy, interrupted=True)
            self._log_pending(pending, global_batch)
            pending = []
            if (
                (s.epoch + 1) % self.epochs_per_eval
                and s.step < self.total_steps
                and s.epoch + 1 < self.max_epochs
            ):
                s.epoch, s.epoch_steps_done = s.epoch + 1, 0  # no validation in this epoch
                continue
            stop = self._end_epoch()
            if stop:
                break
        s.completed = True
        self.save((LAST,))
        if bar is not None:
            bar.close()
        return self._summary(started, samples, busy)

    def _end_epoch(self) -> bool:
        """Validate, keep the best, checkpoint, decide early stopping (same decision on all ranks)."""
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
        if self.run_logger is not None:
            self.run_logger.log_now(
                s.step, {**metrics, f"best_{cfg.loop.early_stopping_metric}": s.best_metric}
            )
        if self.ctx.is_main:
            logger.info(
                "epoch %d step %d: %s%s",
                s.epoch,
                s.step,
                json.dumps(metrics),
                " (best)" if improved else "",
            )
        return stop

    def _mean_epoch_loss(self) -> float | None:
        """Mean training loss of the epoch's steps over all ranks (steps since a resume only);
        resets the accumulator. ``None`` when no step ran (e.g. resumed at the epoch's end)."""
        totals = self._epoch_loss.clone()
        all_reduce_sum(totals, self.ctx)
        self._epoch_loss.zero_()
        loss_sum, count = totals.tolist()
        return loss_sum / count if count else None

    def _log_pending(
        self, pending: list[tuple[int, torch.Tensor, torch.Tensor, float]], global_batch: int
    ) -> None:
        if not pending or self.run_logger is None or not self.ctx.is_main:
            return
        losses = torch.stack([p[1] for p in pending]).tolist()  # one device sync per window
        norms = torch.stack([p[2].float() for p in pending]).tolist()
        for (step, _, _, lr), loss, norm in zip(pending, losses, norms, strict=True):
            metrics = {"train_loss": loss, "lr": lr, "grad_norm": norm}
            if step == pending[-1][0]:
                metrics["samples_per_s"] = self._throughput(global_batch)
            self.run_logger.log_step(step, metrics)
        self.run_logger.flush()

    def _throughput(self, global_batch: int) -> float:
        now = time.perf_counter()
        last_t, last_step = self._tp_mark
        self._tp_mark = (now, self.state.step)
        return global_batch * (self.state.step - last_step) / max(now - last_t, 1e-9)

    def _progress_bar(self) -> Any:
        mode = self.cfg.progress_bar
        if not self.ctx.is_main or mode == "never":
            return None
        import sys

        if mode == "auto" and not sys.stderr.isatty():
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total_steps, initial=self.state.step, desc="training", unit="step")

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
            "stopped_early": bool(getattr(self, "_stopped_early", False)),
            "interrupted": interrupted,
            "world_size": self.ctx.world_size,
            "precision": self.policy.mode,
            "global_batch_size": self.micro * self.ctx.world_size * self.accum,
            "train_samples_per_s": samples / train_seconds
            if samples and train_seconds > 0
            else None,
            "step_compute_samples_per_s": samples / busy if busy > 0 else None,
            "samples_trained": samples,
            "loop_seconds": loop_seconds,
            "validation_seconds": self._validation_seconds,
            "checkpoint_seconds": self._checkpoint_seconds,
            # CPU seconds of this process (all its threads) in the loop, without validation:
            # a throughput measure that other tenants of the machine do not distort
            "train_cpu_seconds": time.process_time()
            - self._cpu_started
            - self._validation_cpu_seconds,
            "history": s.history,
            "fingerprint": self.fingerprint,
        }
