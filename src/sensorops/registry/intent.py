"""Crash-safe registry changes: write an intent record, apply its steps, clear it.

MLflow's registry has no transactions, so every change of registered model ``NAME`` that needs
more than one write goes through an **intent record**: the registered-model tag
``sensorops.intent`` holding JSON ``{"id", "kind", "owner", "holder", "started_at", "summary",
"steps", ...}``, written while the promotion lease is held and before the first write.

- A **transition** intent lists its writes as idempotent steps (``{"op": "vtag" | "legacy" |
  "alias" | "event", ...}``, each "set this to that"). Its gates passed before the intent was
  written, so a transition found half-done is **completed**: every step is applied again (steps
  already applied are no-ops). An in-process failure rewrites the intent with the undo steps
  first, so a kill during the undo is completed *as an undo*.
- A **register** intent names the registration id and the variants it will create. A
  registration found half-done is **completed** when every planned variant already has its
  version (the missing history events are written), otherwise **undone** (its versions and
  events are deleted).

Whoever takes the lease next (:func:`repair_pending`, called by every registering or
transitioning command, and by ``sensorops models doctor --fix``) finds the intent of the dead
holder, repairs it, appends a ``repair`` event to the history and clears the intent. The lease is
only granted once its previous holder's lease expired or its process is gone
(:mod:`sensorops.registry.lock`), so an intent found by a lease holder always belongs to a dead or
timed-out process.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

from sensorops.faultpoints import kill_point
from sensorops.registry.client import Registry, is_not_found
from sensorops.registry.errors import TransitionFailed
from sensorops.registry.history import HISTORY_PREFIX, append_event, read_history
from sensorops.registry.lineage import actor
from sensorops.runlock import is_alive, process_identity

logger = logging.getLogger(__name__)

INTENT_TAG = "sensorops.intent"
REGISTRATION_TAG = "sensorops.registration_id"
"""Version tag naming the registration (intent) that created the version."""
VARIANT_TAG = "sensorops.variant"


@dataclass
class Intent:
    """A planned multi-write change of one registered model (see the module docstring)."""

    kind: str
    owner: str
    summary: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    undo: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "apply"
    registration_id: str | None = None
    variants: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    holder: dict[str, Any] = field(default_factory=lambda: {**process_identity(), "actor": actor()})
    started_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, raw: str) -> Intent:
        data = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def holder_alive(self) -> bool | None:
        """True/False for a holder on this host, None for another host (unknown)."""
        h = self.holder
        return is_alive(h.get("pid"), h.get("host"), h.get("start_ticks"))

    def describe(self) -> str:
        h = self.holder
        return (
            f"{self.kind} intent {self.id} ({self.summary}; {self.mode}) left by {h.get('actor')} "
            f"PID {h.get('pid')} at {self.started_at}"
        )


def read_intent(reg: Registry, name: str) -> Intent | None:
    """The pending intent of ``name``, or None."""
    raw = (reg.client.get_registered_model(name).tags or {}).get(INTENT_TAG)
    if not raw:
        return None
    try:
        return Intent.from_json(raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise TransitionFailed(
            f"intent tag {INTENT_TAG!r} of {name!r} is not a valid intent record ({exc}): {raw[:200]}"
        ) from exc


def write_intent(reg: Registry, name: str, intent: Intent) -> None:
    reg.client.set_registered_model_tag(name, INTENT_TAG, intent.to_json())


def clear_intent(reg: Registry, name: str) -> None:
    reg.client.delete_registered_model_tag(name, INTENT_TAG)


# --- steps -------------------------------------------------------------------------------------


def set_legacy(reg: Registry, name: str, version: str, legacy_stage: str) -> bool:
    """Mirror to MLflow's deprecated stage field; False once the server refuses stages."""
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*stage.*")
        try:
            reg.client.transition_model_version_stage(
                name, version, legacy_stage, archive_existing_versions=False
            )
        except MlflowException as exc:
            if (
                "stage" in str(exc).lower()
                and getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST"
            ):
                logger.warning("server refuses legacy model stages (%s); mirroring disabled", exc)
                return False
            raise
    return True


def event_key(seq: int) -> str:
    return f"{HISTORY_PREFIX}{int(seq):06d}"


def apply_step(reg: Registry, name: str, step: dict[str, Any]) -> bool:
    """Apply one idempotent step (setting what is already set is a no-op).

    Returns False only for a legacy-stage step the server refuses (stages switched off).
    """
    c, op = reg.client, step["op"]
    if op == "vtag":
        if step["value"] is None:
            try:
                c.delete_model_version_tag(name, step["version"], step["key"])
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        else:
            c.set_model_version_tag(name, step["version"], step["key"], step["value"])
    elif op == "legacy":
        return set_legacy(reg, name, step["version"], step["stage"])
    elif op == "alias":
        if step["version"] is None:
            try:
                c.delete_registered_model_alias(name, step["alias"])
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        else:
            c.set_registered_model_alias(name, step["alias"], step["version"])
    elif op == "event":
        key = event_key(step["seq"])
        if step["event"] is None:
            try:
                c.delete_registered_model_tag(name, key)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
            return True
        value = json.dumps(step["event"], sort_keys=True, default=str)
        current = (c.get_registered_model(name).tags or {}).get(key)
        if current == value:
            return True
        if current is not None:
            raise TransitionFailed(
                f"history slot {key} of {name!r} holds another event; the history was written "
                "without the lease"
            )
        c.set_registered_model_tag(name, key, value)
    else:
        raise ValueError(f"unknown intent step op {op!r}")
    return True


def apply_steps(
    reg: Registry,
    name: str,
    steps: list[dict[str, Any]],
    point: str,
    done: list[int] | None = None,
) -> bool:
    """Apply ``steps`` in order, with kill point ``point`` after each write.

    ``done`` (if given) receives the index of every step that completed, so that an in-process
    failure undoes exactly those. Returns False when the server refused legacy stages (the
    remaining legacy steps are skipped).
    """
    legacy = True
    for i, step in enumerate(steps):
        if step["op"] == "legacy" and not legacy:
            continue
        if not apply_step(reg, name, step):
            legacy = False
        if done is not None:
            done.append(i)
        kill_point(point)
    return legacy


# --- repair ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repair:
    """What :func:`repair_pending` did: ``action`` is ``completed`` or ``undone``."""

    intent: Intent
    action: str
    detail: str
    seq: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent.id,
            "kind": self.intent.kind,
            "summary": self.intent.summary,
            "action": self.action,
            "detail": self.detail,
            "seq": self.seq,
        }


def repair_pending(reg: Registry, name: str, owner: str) -> Repair | None:
    """Complete or undo the intent a dead holder left on ``name``; call while holding the lease.

    ``owner`` is the caller's lease owner; an intent of the caller itself is left alone.
    Returns what was done (None when nothing was pending).
    """
    intent = read_intent(reg, name)
    if intent is None or intent.owner == owner:
        return None
    logger.warning("repairing %s of %s", intent.describe(), name)
    if intent.kind == "transition":
        steps = [s for s in intent.steps if s["op"] != "event" or s["event"] is not None]
        deletes = [s for s in intent.steps if s["op"] == "event" and s["event"] is None]
        for step in steps + deletes:
            try:
                apply_step(reg, name, step)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                logger.warning("repair step %s of %s skipped: %s", step, name, exc)
            kill_point("repair.step")
        action = "completed" if intent.mode == "apply" else "undone"
        detail = f"{action} the interrupted {intent.summary} ({len(steps) + len(deletes)} steps)"
    elif intent.kind == "register":
        action, detail = _repair_registration(reg, name, intent)
    else:
        raise TransitionFailed(f"unknown intent kind {intent.kind!r} on {name!r}")
    seq = _repair_event(reg, name, intent, action, detail)
    clear_intent(reg, name)
    logger.warning("%s: %s (history event #%s)", name, detail, seq)
    return Repair(intent=intent, action=action, detail=detail, seq=seq)


def _repair_event(reg: Registry, name: str, intent: Intent, action: str, detail: str) -> int:
    for event in read_history(reg, name):
        if event.get("kind") == "repair" and event.get("intent") == intent.id:
            return int(event["seq"])  # a repair killed after its event: do not log it twice
    return append_event(
        reg,
        name,
        {
            "kind": "repair",
            "intent": intent.id,
            "action": action,
            "version": None,
            "from": None,
            "to": None,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "by": actor(),
            "holder": intent.holder,
            "reason": detail,
        },
    )


def registration_versions(reg: Registry, name: str, registration_id: str) -> dict[str, str]:
    """``{version: variant}`` of the versions registration ``registration_id`` created."""
    out = {}
    for mv in reg.client.search_model_versions(f"name='{name}'"):
        tags = mv.tags or {}
        if tags.get(REGISTRATION_TAG) == registration_id:
            out[str(mv.version)] = tags.get(VARIANT_TAG, "?")
    return out


def _repair_registration(reg: Registry, name: str, intent: Intent) -> tuple[str, str]:
    rid = intent.registration_id
    made = registration_versions(reg, name, rid)
    events = [
        e
        for e in read_history(reg, name)
        if e.get("kind") == "register" and e.get("registration_id") == rid
    ]
    have_event = {str(e.get("version")) for e in events}
    if sorted(made.values()) == sorted(intent.variants):
        for version, variant in sorted(made.items(), key=lambda kv: int(kv[0])):
            if version not in have_event:
                append_event(
                    reg,
                    name,
                    register_event(version, variant, rid, "registered (completed by repair)"),
                )
                kill_point("repair.step")
        return "completed", (
            f"completed the interrupted registration {rid}: versions "
            f"{sorted(made, key=int)} ({', '.join(intent.variants)}) were all created"
        )
    for event in events:
        reg.client.delete_registered_model_tag(name, event_key(event["seq"]))
        kill_point("repair.step")
    for version in sorted(made, key=int):
        reg.client.delete_model_version(name, version)
        kill_point("repair.step")
    return "undone", (
        f"undid the interrupted registration {rid} of {intent.variants}: deleted versions "
        f"{sorted(made, key=int) or 'none'} (only {sorted(made.values())} had been created)"
    )


def register_event(
    version: str, variant: str, registration_id: str, reason: str = "registered"
) -> dict[str, Any]:
    return {
        "kind": "register",
        "version": version,
        "variant": variant,
        "from": None,
        "to": "candidate",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "by": actor(),
        "registration_id": registration_id,
        "reason": reason,
    }
