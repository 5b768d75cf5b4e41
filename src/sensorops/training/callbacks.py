"""Trainer callbacks: everything around the optimizer step that is not the step itself.

The :class:`~sensorops.training.loop.Trainer` calls, on every rank:

- ``on_fit_start(trainer)`` once, after an automatic resume;
- ``on_step_end(trainer, out)`` after each optimizer step, with a :class:`StepOutput`;
- ``on_epoch_end(trainer, epoch)`` after an epoch's last step, before validation;
- ``on_eval_end(trainer, step, metrics)`` after each validation pass, with the all-reduced
  validation metrics (identical on every rank) and ``best_<metric>``;
- ``on_fit_end(trainer, summary)`` once, when the loop returns.

Any callback may call ``trainer.request_stop(reason)``: the loop stops after the current step
(or evaluation), saves ``last.pt`` and reports ``stopped_by=reason``. A request made in
``on_eval_end`` on one rank only (a rank-0 hyperparameter search that prunes the trial, e.g. an
Optuna callback calling ``trial.report(metrics["val_loss"], step)`` then ``trial.should_prune()``)
stops every rank: the trainer all-reduces the stop flag after each evaluation. A request made in
``on_step_end`` must be made on every rank alike (based on the step, as :class:`StopAtStep`
does): agreeing on it would cost a collective per step.

Step outputs hold **tensors** (on the training device), not floats: a callback that needs a
number pays the host-device sync itself, and the built-in ones sync once per logging window.
Nothing in this module imports MLflow, tqdm or Optuna at import time.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from sensorops.training.loop import Trainer
    from sensorops.training.run_logging import RunLogger

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutput:
    """What one optimizer step produced (this rank's view)."""

    step: int
    """Optimizer steps done so far (1-based)."""
    epoch: int
    loss: torch.Tensor
    """0-dim training loss of this rank's micro-batches, on the training device (no sync)."""
    grad_norm: torch.Tensor
    """0-dim global gradient norm before clipping, on the training device (no sync)."""
    lr: float
    """Learning rate the step used."""
    samples: int
    """Global samples per optimizer step (all ranks, all micro-batches)."""


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        pass

    def on_eval_end(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        pass


def overrides(callback: Callback, hook: str) -> bool:
    """True when ``callback`` implements ``hook`` itself (the loop skips inherited no-ops)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class MetricsLogger(Callback):
    """Rank-0 per-step metrics (``train_loss``, ``lr``, ``grad_norm``, ``samples_per_s``) and the
    per-epoch validation metrics, through a :class:`~sensorops.training.run_logging.RunLogger`.

    Per step it only appends ``(step, loss tensor, norm tensor, lr)`` to a list. Every
    ``every_n_steps`` steps (and at each epoch end) it converts the window with one
    ``torch.stack(...).tolist()`` (the only host-device sync) and hands it to the logger, whose
    background thread sends it. Every step is logged; ``samples_per_s`` is logged once per window.
    """

    def __init__(self, run_logger: RunLogger, every_n_steps: int) -> None:
        self.run_logger = run_logger
        self.every_n_steps = every_n_steps
        self._window: list[tuple[int, torch.Tensor, torch.Tensor, float]] = []
        self._mark: tuple[float, int] = (time.perf_counter(), 0)

    def on_fit_start(self, trainer: Trainer) -> None:
        self._mark = (time.perf_counter(), trainer.state.step)

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        self._window.append((out.step, out.loss, out.grad_norm, out.lr))
        if out.step % self.every_n_steps == 0:
            self._flush(out.samples)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self._flush(trainer.global_batch)

    def on_eval_end(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        self.run_logger.log_now(step, metrics)

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self._flush(trainer.global_batch)

    def _flush(self, global_batch: int) -> None:
        window, self._window = self._window, []
        if not window:
            return
        losses = torch.stack([w[1] for w in window]).tolist()  # one sync per window
        norms = torch.stack([w[2].float() for w in window]).tolist()
        now = time.perf_counter()
        last_t, last_step = self._mark
        last = window[-1][0]
        self._mark = (now, last)
        rows = [
            (step, {"train_loss": loss, "lr": lr, "grad_norm": norm})
            for (step, _, _, lr), loss, norm in zip(window, losses, norms, strict=True)
        ]
        rows[-1][1]["samples_per_s"] = global_batch * (last - last_step) / max(now - last_t, 1e-9)
        self.run_logger.log_steps(rows)


class ProgressBar(Callback):
    """A tqdm bar on rank 0: ``mode`` ``always``, ``never`` or ``auto`` (only on a terminal).

    It redraws at most ``refresh_s`` apart (tqdm's ``mininterval``); per step it adds 1 to a counter.
    """

    def __init__(self, mode: str = "auto", refresh_s: float = 0.5) -> None:
        self.mode = mode
        self.refresh_s = refresh_s
        self._bar: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not trainer.ctx.is_main or self.mode == "never":
            return
        if self.mode == "auto" and not sys.stderr.isatty():
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=trainer.total_steps,
            initial=trainer.state.step,
            desc="training",
            unit="step",
            mininterval=self.refresh_s,
        )

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class PeriodicCheckpoint(Callback):
    """``last.pt`` every ``every_n_steps`` optimizer steps (the epoch-end checkpoints, which also
    keep ``best.pt``, are the trainer's own). Collective: every rank must have it."""

    def __init__(self, every_n_steps: int) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1; got {every_n_steps}")
        self.every_n_steps = every_n_steps

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        if out.step % self.every_n_steps == 0:
            trainer.save_last()


class StopAtStep(Callback):
    """Stop after optimizer step ``step`` on every rank.

    ``finish=True`` stops gracefully (``last.pt`` written, ``stopped_by`` in the summary);
    ``finish=False`` returns at once as an interrupted run, writing nothing more, the way a crash
    right after that step would leave the run directory (the resume tests use it).
    """

    def __init__(self, step: int, finish: bool = True) -> None:
        self.step = step
        self.finish = finish

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        if out.step >= self.step:
            trainer.request_stop(f"step {self.step} reached", finish=self.finish)
