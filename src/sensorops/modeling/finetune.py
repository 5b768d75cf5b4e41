"""A short single-process fine-tune (no DDP) sized in optimizer steps.

- Budget: ``max(config.steps, config.epochs * steps_per_epoch)`` optimizer steps, so a small
  training split (BasicMotions: 32 series, batch 32, one step per epoch) still gets real training
  while a large one gets at least ``epochs`` passes.
- Schedule: constant, or linear warmup then cosine decay (``config.schedule``).
- Loss: cross-entropy, optionally distilled from fp32 teacher logits:
  ``alpha * T**2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE``.
- Early stopping: validation accuracy (ties broken by validation loss) every
  ``eval_every_steps``; the best weights are restored at the end.

Hooks let the compression variants shape the training: ``step_context`` wraps every forward
(and the validation forward, so QAT is judged with its 4-bit weights) and ``after_step`` runs
after every optimizer step (re-apply or grow a pruning mask).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sensorops.modeling.config import FinetuneConfig
from sensorops.modeling.errors import ModelingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneReport:
    """What a fine-tune did.

    Attributes:
        steps_planned: the budget ``max(steps, epochs * steps_per_epoch)``.
        steps_taken: optimizer steps really taken (fewer when it stopped early).
        steps_per_epoch: ``ceil(n_train / batch_size)``.
        best_step: step whose weights were kept (``steps_taken`` without validation).
        best_val_accuracy / best_val_loss: validation scores of the kept weights (``None``
            without validation).
        stopped_early: the patience ran out before the budget.
        losses: training loss of every step.
    """

    steps_planned: int
    steps_taken: int
    steps_per_epoch: int
    best_step: int
    best_val_accuracy: float | None
    best_val_loss: float | None
    stopped_early: bool
    losses: list[float] = field(default_factory=list)

    def summary(self) -> str:
        kept = (
            f", kept step {self.best_step} (val accuracy {self.best_val_accuracy:.3f})"
            if self.best_val_accuracy is not None
            else ""
        )
        stop = " (stopped early)" if self.stopped_early else ""
        return f"{self.steps_taken}/{self.steps_planned} steps{stop}{kept}"


def planned_steps(n_train: int, config: FinetuneConfig) -> tuple[int, int]:
    """``(total steps, steps per epoch)`` of a fine-tune on ``n_train`` series."""
    per_epoch = max(1, math.ceil(n_train / config.batch_size))
    return max(config.steps, config.epochs * per_epoch), per_epoch


def lr_at(step: int, total: int, config: FinetuneConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total``."""
    if config.schedule == "constant":
        return config.lr
    warmup = int(round(config.warmup_fraction * total))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = config.min_lr_ratio * config.lr
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def distillation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Cross-entropy, mixed with the temperature-softened KL to the teacher when given."""
    ce = F.cross_entropy(logits, target)
    if teacher_logits is None or alpha == 0.0:
        return ce
    t = temperature
    kl = F.kl_div(
        F.log_softmax(logits / t, dim=1),
        F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * (t * t) * kl + (1.0 - alpha) * ce


def _evaluate(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    context: Callable[[], AbstractContextManager[None]],
) -> tuple[float, float]:
    model.eval()
    with torch.no_grad(), context():
        logits = model(X)
    model.train()
    acc = float((logits.argmax(dim=1) == y).float().mean())
    return acc, float(F.cross_entropy(logits, y))


def finetune(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    config: FinetuneConfig,
    step_context: Callable[[], AbstractContextManager[None]] | None = None,
    after_step: Callable[[int, int], None] | None = None,
    teacher_logits: np.ndarray | None = None,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    select_from_step: int = 0,
) -> FinetuneReport:
    """Fine-tune ``model`` in place and return what happened.

    Args:
        model: maps ``(batch, time, channels)`` to logits.
        X: float32 ``(n, time, channels)`` training inputs.
        y: int64 ``(n,)`` class codes.
        config: budget, schedule, distillation, early stopping, seed.
        step_context: entered around each forward/backward and validation forward.
        after_step: ``after_step(step, total)`` after every optimizer step (1-based ``step``).
        teacher_logits: ``(n, n_classes)`` fp32 teacher logits of ``X`` (needed when
            ``config.distill.alpha > 0``).
        X_val / y_val: validation split for early stopping (needed when
            ``config.early_stopping.eval_every_steps > 0``; skipped when empty).
        select_from_step: evaluations before this step are not candidates for the kept weights
            (e.g. while a sparsity ramp is still growing).

    Returns:
        :class:`FinetuneReport`; the model holds the kept weights and is in eval mode.
    """
    if X.ndim != 3 or len(X) != len(y) or len(X) == 0:
        raise ModelingError(
            f"fine-tune needs X (n, time, channels) and y (n,) with n >= 1; got {X.shape} and {y.shape}"
        )
    if config.distill.alpha > 0 and (teacher_logits is None or len(teacher_logits) != len(X)):
        raise ModelingError(
            "finetune.distill.alpha > 0 needs teacher logits for every training series; got "
            f"{None if teacher_logits is None else teacher_logits.shape} for {len(X)} series"
        )
    total, per_epoch = planned_steps(len(X), config)
    es = config.early_stopping
    use_val = es.eval_every_steps > 0 and X_val is not None and y_val is not None and len(X_val)
    if total == 0:
        model.eval()
        return FinetuneReport(0, 0, per_epoch, 0, None, None, False)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    Tt = (
        torch.from_numpy(np.ascontiguousarray(teacher_logits, dtype=np.float32))
        if teacher_logits is not None and config.distill.alpha > 0
        else None
    )
    if use_val:
        Xv = torch.from_numpy(np.ascontiguousarray(X_val, dtype=np.float32))
        yv = torch.from_numpy(np.asarray(y_val, dtype=np.int64))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    context = step_context or nullcontext
    losses: list[float] = []
    best: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_step = 0
    stale = 0
    stopped = False

    def consider(step: int) -> bool:
        """Evaluate; keep the weights if best; return True when patience ran out."""
        nonlocal best, best_state, best_step, stale
        if step < select_from_step:
            return False
        acc, loss = _evaluate(model, Xv, yv, context)
        if best is None or acc > best[0] + es.min_delta or (acc >= best[0] and loss < best[1]):
            improved_acc = best is None or acc > best[0] + es.min_delta
            best, best_step = (acc, loss), step
            best_state = copy.deepcopy(model.state_dict())
            stale = 0 if improved_acc else stale + 1
        else:
            stale += 1
        return es.patience_evals > 0 and stale >= es.patience_evals

    model.train()
    if use_val:
        consider(0)
    order = torch.randperm(len(Xt), generator=generator)
    cursor = 0
    step = 0
    while step < total:
        if cursor >= len(order):
            order = torch.randperm(len(Xt), generator=generator)
            cursor = 0
        idx = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, config)
        optimizer.zero_grad(set_to_none=True)
        with context():
            loss = distillation_loss(
                model(Xt[idx]),
                yt[idx],
                Tt[idx] if Tt is not None else None,
                config.distill.alpha,
                config.distill.temperature,
            )
            loss.backward()
        if config.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip_norm)
        optimizer.step()
        step += 1
        if after_step is not None:
            after_step(step, total)
        losses.append(float(loss.detach()))
        if use_val and (step % es.eval_every_steps == 0 or step == total):
            if consider(step):
                stopped = step < total
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    report = FinetuneReport(
        steps_planned=total,
        steps_taken=step,
        steps_per_epoch=per_epoch,
        best_step=best_step if best is not None else step,
        best_val_accuracy=best[0] if best is not None else None,
        best_val_loss=best[1] if best is not None else None,
        stopped_early=stopped,
        losses=losses,
    )
    logger.info("fine-tune: %s, last loss %.4f", report.summary(), losses[-1])
    return report
