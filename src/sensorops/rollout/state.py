"""Where a rollout stands, as the registry stores it (read by every replica and the controller).

One registered-model tag, ``sensorops.rollout``, holds the rollout as JSON
(:class:`RolloutState`): the canary version, its traffic weight in percent, the mode (``live`` or
``shadow``), the step number and when the current step began. The canary itself is the alias
``@canary`` (``rollout.canary_alias``). A replica routes to the canary only while **both** agree:
the tag names the version ``@canary`` points at. Any other combination (a tag without the alias, an
alias without a tag, the two naming different versions) routes everything to production, so a
half-written start or abort can never send traffic to a version that is not the canary.

Writes keep that rule on every prefix of their order: ``start`` sets ``@canary`` before the tag,
``abort``/rollback deletes the tag before ``@canary``, and ``promote`` moves ``@production`` through
the gated transition before it deletes the tag and ``@canary``. :func:`half_written` names what a
killed writer left behind; the controller repairs it before anything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

logger = logging.getLogger(__name__)

ROLLOUT_TAG = "sensorops.rollout"
"""Registered-model tag holding the :class:`RolloutState` JSON."""
ROLLOUT_LOCK_TAG = "sensorops.rollout.lock"
"""Registered-model tag of the controller's lease (one running controller per model)."""
DEFAULT_CANARY_ALIAS = "canary"

Mode = Literal["live", "shadow"]


@dataclass(frozen=True)
class RolloutState:
    """One rollout of ``version`` on a registered model.

    Attributes:
        id: unique id of this rollout (salts the sticky routing hash).
        version: the canary version (``@canary`` must point at it).
        production: the ``@production`` version when the rollout started.
        weight: percent of live traffic routed to the canary (0-100); ignored in shadow mode.
        mode: ``shadow`` (the canary gets a copy, callers see production) or ``live``.
        step: number of steps taken so far (0 at start).
        started_at: UNIX time of ``start``.
        step_started_at: UNIX time the current weight took effect (the metrics window begins).
        holds: consecutive ``hold`` decisions since the last step.
        last: the last decision (``{"action", "reason", "at"}``), for ``status``.
    """

    version: str
    production: str | None
    weight: float
    mode: Mode = "live"
    step: int = 0
    started_at: float = field(default_factory=time.time)
    step_started_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    holds: int = 0
    last: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> RolloutState:
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["version"] = str(known["version"])
        if known.get("production") is not None:
            known["production"] = str(known["production"])
        return cls(**known)

    def stepped(self, weight: float, mode: Mode | None = None) -> RolloutState:
        return replace(
            self,
            weight=float(weight),
            mode=mode or self.mode,
            step=self.step + 1,
            step_started_at=time.time(),
            holds=0,
        )


@dataclass(frozen=True)
class Arms:
    """What a replica routes by, derived from one read of the registered model.

    Attributes:
        canary: the canary version when the rollout tag and ``@canary`` agree, else ``None``.
        weight: percent to the canary (0 when there is no active canary).
        mode: ``live`` or ``shadow``.
        rollout_id: the rollout's id (hash salt), ``""`` when none.
    """

    canary: str | None = None
    weight: float = 0.0
    mode: Mode = "live"
    rollout_id: str = ""


def parse_state(tags: dict[str, str]) -> RolloutState | None:
    """The :class:`RolloutState` in ``tags``, or ``None`` (absent or unreadable: logged)."""
    raw = tags.get(ROLLOUT_TAG)
    if not raw:
        return None
    try:
        return RolloutState.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("tag %s is not a rollout state (%s): %r", ROLLOUT_TAG, exc, raw[:200])
        return None


def arms_from(
    tags: dict[str, str], aliases: dict[str, str], canary_alias: str = DEFAULT_CANARY_ALIAS
) -> Arms:
    """The routing a replica applies: a canary only when the tag and ``@canary`` name one version."""
    state = parse_state(tags)
    canary = aliases.get(canary_alias)
    if state is None or canary is None or str(canary) != state.version:
        return Arms()
    weight = min(max(float(state.weight), 0.0), 100.0)
    return Arms(canary=state.version, weight=weight, mode=state.mode, rollout_id=state.id)


def half_written(
    tags: dict[str, str], aliases: dict[str, str], canary_alias: str = DEFAULT_CANARY_ALIAS
) -> str | None:
    """What an interrupted writer left inconsistent (``None`` when consistent)."""
    state = parse_state(tags)
    canary = aliases.get(canary_alias)
    if state is None and canary is not None:
        return f"@{canary_alias} -> v{canary} without a rollout tag (an interrupted start or abort)"
    if state is not None and canary is None:
        if aliases.get("production") == state.version:
            return f"rollout of v{state.version} was promoted; its tag was not cleared"
        return f"rollout tag names v{state.version} but there is no @{canary_alias}"
    if state is not None and str(canary) != state.version:
        return f"rollout tag names v{state.version} but @{canary_alias} -> v{canary}"
    return None


def bucket(key: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by ``key`` (sticky routing): SHA-256 of ``salt:key``."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
