"""Fault injection for the restart tests, as a trainer callback the test passes in.

Nothing in the production path arms it: ``launch_training(cfg, mi, callbacks=[KillWorker(...)])``
hands it (pickled, as ``spawn`` requires) to every worker, and it acts on one rank, once.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from sensorops.training.callbacks import Callback, StepOutput

if TYPE_CHECKING:
    from sensorops.training.loop import Trainer

logger = logging.getLogger(__name__)


class KillWorker(Callback):
    """SIGKILL global rank ``rank`` right after optimizer step ``step``, once.

    ``marker`` is a file created just before dying, so the restarted worker group does not die
    again (the restarted workers get a fresh copy of this callback).
    """

    def __init__(self, rank: int, step: int, marker: str | os.PathLike[str]) -> None:
        self.rank = rank
        self.step = step
        self.marker = str(marker)

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        if out.step != self.step or trainer.ctx.rank != self.rank:
            return
        marker = Path(self.marker)
        if marker.exists():
            return
        marker.write_text(f"rank {self.rank} killed at step {self.step}\n")
        logger.warning("fault injection: rank %d SIGKILLs itself at step %d", self.rank, self.step)
        os.kill(os.getpid(), signal.SIGKILL)
