"""Named kill points for the fault-injection tests: a process SIGKILLs itself at a chosen point.

Off unless ``SENSOROPS_FAULT_KILL_AT`` is set (the ``SENSOROPS_FAULT_*`` convention of
:mod:`sensorops.training.faults`)::

    SENSOROPS_FAULT_KILL_AT=transition.step#3      # die at the 3rd time point "transition.step" is hit
    SENSOROPS_FAULT_KILL_AT=register.after_intent  # die the first time
    SENSOROPS_FAULT_MARKER=/tmp/fired              # optional: file written just before dying;
                                                   # when it exists the point no longer fires

Several points may be given, comma-separated. Every point the code can hit is listed in
:data:`KILL_POINTS` (an unknown name in the variable is an error, so a typo cannot make a test
pass by never firing).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_VAR = "SENSOROPS_FAULT_KILL_AT"
MARKER_VAR = "SENSOROPS_FAULT_MARKER"

KILL_POINTS: dict[str, str] = {
    "register.after_intent": "registration intent written, nothing registered yet",
    "register.after_log_model": "a variant's model logged to the run, no version yet",
    "register.after_version": "a version created (with its tags), description not yet set",
    "register.after_description": "a version's description set",
    "register.after_event": "a registration history event written",
    "register.before_clear": "everything registered, intent not yet cleared",
    "transition.after_intent": "transition intent written, no step applied",
    "transition.step": "after each registry write of a transition (tag, legacy stage, alias, event)",
    "transition.before_clear": "every step applied, intent not yet cleared",
    "repair.step": "after each registry write of a repair",
    "promotion.after_register": "promotion pipeline: versions registered, staging not started",
    "promotion.after_stage": "promotion pipeline: staging done, report not yet written",
}
"""Every kill point and where it sits."""

_hits: dict[str, int] = {}


def _armed() -> list[tuple[str, int]]:
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return []
    out = []
    for item in raw.split(","):
        name, _, nth = item.strip().partition("#")
        if name not in KILL_POINTS:
            raise ValueError(
                f"{ENV_VAR}: unknown kill point {name!r}; valid points are {sorted(KILL_POINTS)}"
            )
        out.append((name, int(nth) if nth else 1))
    return out


def kill_point(name: str) -> None:
    """SIGKILL this process if ``name`` is armed (and this is the armed occurrence)."""
    if name not in KILL_POINTS:
        raise ValueError(
            f"kill point {name!r} is not declared in sensorops.faultpoints.KILL_POINTS"
        )
    armed = _armed()
    if not armed:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if (name, _hits[name]) not in armed:
        return
    marker = os.environ.get(MARKER_VAR)
    if marker:
        if Path(marker).exists():
            return
        Path(marker).write_text(f"{name}#{_hits[name]} pid {os.getpid()}\n")
    logger.warning("fault injection: SIGKILL at %s#%d", name, _hits[name])
    os.kill(os.getpid(), signal.SIGKILL)
