"""Fault injection for the restart tests: a worker kills itself with SIGKILL, once.

Set all three environment variables to arm it (nothing happens otherwise):
``SENSOROPS_FAULT_KILL_RANK`` (global rank), ``SENSOROPS_FAULT_KILL_STEP`` (optimizer step after
which it dies) and ``SENSOROPS_FAULT_MARKER`` (a file created just before dying, so the restarted
worker group does not die again).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)


def maybe_die(rank: int, step: int) -> None:
    """SIGKILL this process if the fault is armed for ``rank`` at ``step`` and has not fired yet."""
    kill_rank = os.environ.get("SENSOROPS_FAULT_KILL_RANK")
    kill_step = os.environ.get("SENSOROPS_FAULT_KILL_STEP")
    marker = os.environ.get("SENSOROPS_FAULT_MARKER")
    if kill_rank is None or kill_step is None or marker is None:
        return
    if rank != int(kill_rank) or step != int(kill_step) or Path(marker).exists():
        return
    Path(marker).write_text(f"rank {rank} killed at step {step}\n")
    logger.warning("fault injection: rank %d SIGKILLs itself at step %d", rank, step)
    os.kill(os.getpid(), signal.SIGKILL)
