"""Registered-model history: one registered-model tag per event, appended check-then-set.

Each transition appends ``sensorops.history.<seq>`` (``seq`` zero-padded, so tag order = event
order) holding one JSON event. Appends happen while the promotion lease is held; the writer still
checks that the key is free before writing and re-reads it afterwards, so a lost lease cannot
silently overwrite another writer's event.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sensorops.registry.client import Registry, lookup
from sensorops.registry.errors import TransitionFailed

logger = logging.getLogger(__name__)

HISTORY_PREFIX = "sensorops.history."


def read_history(reg: Registry, name: str) -> list[dict[str, Any]]:
    """All events of registered model ``name``, oldest first (each has a ``seq``)."""
    rm = lookup(lambda: reg.client.get_registered_model(name), f"registered model {name!r}")
    return _events(rm.tags)


def _events(tags: dict[str, str]) -> list[dict[str, Any]]:
    events = []
    for key in sorted(k for k in tags if k.startswith(HISTORY_PREFIX)):
        try:
            event = json.loads(tags[key])
        except json.JSONDecodeError:
            logger.warning("history tag %s is not JSON; skipped", key)
            continue
        event["seq"] = int(key[len(HISTORY_PREFIX) :])
        events.append(event)
    return events


def append_event(reg: Registry, name: str, event: dict[str, Any]) -> int:
    """Append ``event`` to the history of ``name``; return its sequence number.

    Raises:
        TransitionFailed: the slot was taken between check and set (someone else wrote history
            without holding the lease).
    """
    rm = reg.client.get_registered_model(name)
    seqs = [int(k[len(HISTORY_PREFIX) :]) for k in rm.tags if k.startswith(HISTORY_PREFIX)]
    seq = max(seqs, default=0) + 1
    key = f"{HISTORY_PREFIX}{seq:06d}"
    value = json.dumps({k: v for k, v in event.items() if k != "seq"}, sort_keys=True, default=str)
    if key in reg.client.get_registered_model(name).tags:
        raise TransitionFailed(f"history slot {key} of {name!r} was taken concurrently")
    reg.client.set_registered_model_tag(name, key, value)
    if reg.client.get_registered_model(name).tags.get(key) != value:
        raise TransitionFailed(f"history slot {key} of {name!r} was overwritten concurrently")
    return seq


def delete_event(reg: Registry, name: str, seq: int) -> None:
    """Remove event ``seq`` (only used to undo a half-applied transition)."""
    reg.client.delete_registered_model_tag(name, f"{HISTORY_PREFIX}{seq:06d}")
