"""The rollout controller: start, step, hold, roll back, promote; resumable from the registry.

Everything the controller knows between two decisions is in the registry (:mod:`.state`): the
``@canary`` alias, the ``sensorops.rollout`` tag (weight, mode, step, when the step began) and
the model's history. A controller that was killed and started again reads them and carries on;
nothing lives only in its memory.

Locks: ``run`` holds the **rollout lease** (the registry lease on tag ``sensorops.rollout.lock``,
:class:`~sensorops.registry.lock.RegistryLease`) for its whole life, so two controllers never
drive one model; every registry write (``start``, ``step``, ``abort``, the cleanup after
``promote``) also takes the **promotion lease** (``sensorops.lock``) for just that write, so a
manual ``sensorops models promote`` never interleaves with a rollout's writes. The promotion at
100 % is the ordinary gated transition (:func:`sensorops.registry.transitions.promote`): the gates
run again, the old production version is archived and stays available to ``models rollback``.

Every start, step, rollback, abort and promotion appends a ``kind: rollout`` event (with the
window's per-arm numbers) to the same history as promotions (:mod:`sensorops.registry.history`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sensorops.model_input import ModelInput
from sensorops.registry.client import Registry, lookup
from sensorops.registry.config import PromotionConfig
from sensorops.registry.errors import GateRefused, NotFoundError, RegistryError
from sensorops.registry.gates import evaluate_gates
from sensorops.registry.history import append_event, read_history
from sensorops.registry.lineage import actor
from sensorops.registry.lock import RegistryLease
from sensorops.registry.transitions import promote, read_state, repair
from sensorops.rollout.armstats import arm_stats
from sensorops.rollout.checks import Decision, decide
from sensorops.rollout.config import RolloutConfig
from sensorops.rollout.state import (
    ROLLOUT_LOCK_TAG,
    ROLLOUT_TAG,
    RolloutState,
    half_written,
    parse_state,
)

logger = logging.getLogger(__name__)

MAX_EVENT = 4800
"""Characters of one history event (an MLflow tag value holds 5000 in the SQL stores)."""


class RolloutError(RegistryError):
    """A rollout command cannot go ahead (no rollout, one already running, a bad version)."""

    exit_code = 2


class RolloutBusy(RolloutError):
    """Another rollout is in progress on this model."""

    exit_code = 4


@dataclass
class Rollout:
    """The rollout of one registered model.

    Attributes:
        reg: connected registry.
        name: registered model name.
        cfg: rollout thresholds and timing.
        promotion: the promotion gates and lease (``parameters_promotion.yml``).
        arm_log: the service's arm log directory (``serving.rollout.log_dir``).
        feedback_log: the feedback log directory (``<prediction_log.dir>/../feedback``).
        mi: model input (or a loader) whose test split feeds the no-regression gate.
        production_alias: the alias callers are served by (``serving.alias``).
    """

    reg: Registry
    name: str
    cfg: RolloutConfig
    promotion: PromotionConfig
    arm_log: Path
    feedback_log: Path
    mi: ModelInput | Callable[[], ModelInput] | None = None
    production_alias: str = "production"

    # --- reading --------------------------------------------------------------------------------

    def _model(self) -> tuple[dict[str, str], dict[str, str]]:
        rm = lookup(
            lambda: self.reg.client.get_registered_model(self.name),
            f"registered model {self.name!r}",
        )
        return dict(rm.tags or {}), {a: str(v) for a, v in (rm.aliases or {}).items()}

    def state(self) -> RolloutState | None:
        """The rollout in progress (``None`` when there is none)."""
        tags, aliases = self._model()
        if half_written(tags, aliases, self.cfg.canary_alias):
            return None
        return parse_state(tags)

    def evaluate(self, state: RolloutState, until: float | None = None) -> Decision:
        """The decision for the window since the current step began (up to ``until``, now)."""
        until = time.time() if until is None else until
        arms = arm_stats(
            self.arm_log, self.feedback_log, state.step_started_at, until, model=self.name
        )
        return decide(
            arms, self.cfg.checks, self.next_weight(state), self.production_alias,
            self.cfg.canary_alias,
        )  # fmt: skip

    def next_weight(self, state: RolloutState) -> float:
        """The weight a step would set (a shadow canary goes live at ``initial_weight``)."""
        if state.mode == "shadow":
            return self.cfg.initial_weight
        return min(100.0, state.weight + self.cfg.step_points)

    def status(self) -> dict[str, Any]:
        """Weight, arms, their numbers and the next decision (``sensorops rollout status``)."""
        tags, aliases = self._model()
        state = parse_state(tags)
        out: dict[str, Any] = {
            "model": self.name,
            "production": aliases.get(self.production_alias),
            "canary": aliases.get(self.cfg.canary_alias),
            "inconsistent": half_written(tags, aliases, self.cfg.canary_alias),
            "rollout": None,
        }
        if state is not None and out["inconsistent"] is None:
            decision = self.evaluate(state)
            out["rollout"] = {
                "id": state.id, "version": state.version, "weight": state.weight,
                "mode": state.mode, "step": state.step,
                "window_s": round(time.time() - state.step_started_at, 1),
                "last": state.last, "next": decision.to_dict(),
            }  # fmt: skip
        return out

    # --- writing (each under the promotion lease) -------------------------------------------------

    def _lease(self, purpose: str) -> RegistryLease:
        return RegistryLease(
            self.reg, self.name, self.promotion.lock, purpose=f"rollout: {purpose}"
        )

    def _event(self, action: str, state: RolloutState, **extra: Any) -> int:
        event: dict[str, Any] = {
            "kind": "rollout", "action": action, "version": state.version,
            "production": state.production, "rollout_id": state.id, "mode": state.mode,
            "weight": state.weight, "step": state.step,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "by": actor(), **extra,
        }  # fmt: skip
        for key in ("checks", "arms"):
            if len(json.dumps(event, default=str)) > MAX_EVENT:
                event.pop(key, None)
        if len(json.dumps(event, default=str)) > MAX_EVENT:
            event["reason"] = str(event.get("reason", ""))[:500]
        return append_event(self.reg, self.name, event)

    def _repair(self, lease: RegistryLease) -> str | None:
        """Finish what a killed writer left: the rule of :func:`~.state.half_written`."""
        repair(self.reg, self.name, lease)
        tags, aliases = self._model()
        problem = half_written(tags, aliases, self.cfg.canary_alias)
        if problem is None:
            return None
        logger.warning("repairing rollout state of %s: %s", self.name, problem)
        state = parse_state(tags)
        client = self.reg.client
        if ROLLOUT_TAG in tags:
            client.delete_registered_model_tag(self.name, ROLLOUT_TAG)
        if self.cfg.canary_alias in aliases:
            client.delete_registered_model_alias(self.name, self.cfg.canary_alias)
        if state is not None:
            promoted = aliases.get(self.production_alias) == state.version
            self._event("promoted" if promoted else "repair", state, reason=problem)
        return problem

    def start(self, version: str | int, shadow: bool = False, reason: str = "") -> RolloutState:
        """Set ``@canary`` on ``version`` after the production gates pass; weight ``initial_weight``.

        Raises:
            RolloutBusy: a rollout is already in progress on this model.
            RolloutError: ``version`` is the production version.
            GateRefused: a promotion gate refused ``version`` (nothing was written).
        """
        version = str(version)
        lookup(
            lambda: self.reg.client.get_model_version(self.name, version),
            f"version {version} of registered model {self.name!r}",
        )
        with self._lease(f"start v{version}") as lease:
            self._repair(lease)
            tags, aliases = self._model()
            current = parse_state(tags)
            if current is not None:
                raise RolloutBusy(
                    f"a rollout of v{current.version} is in progress on {self.name!r} (weight "
                    f"{current.weight}%, step {current.step}); abort it first"
                )
            production = aliases.get(self.production_alias)
            if production == version:
                raise RolloutError(
                    f"v{version} already is @{self.production_alias} of {self.name!r}"
                )
            ms = read_state(self.reg, self.name)
            vs = ms.versions[version]
            report = evaluate_gates(
                self.reg, self.name, version, vs.stage, "production", vs.tags, ms.production,
                self.promotion.gates, lambda: self.mi() if callable(self.mi) else self.mi,
            )  # fmt: skip
            failure = report.first_failure
            if failure is not None:
                raise GateRefused(
                    f"rollout of {self.name} v{version} refused by gate '{failure.gate}': "
                    f"{failure.message}",
                    gate=failure.gate, numbers=failure.numbers, report=report.to_dict(),
                )  # fmt: skip
            state = RolloutState(
                version=version,
                production=production,
                weight=0.0 if shadow else self.cfg.initial_weight,
                mode="shadow" if shadow else "live",
            )
            lease.verify()
            # alias first, tag second: a kill in between leaves an alias without a tag, which
            # routes nothing to the canary and is repaired by the next command
            self.reg.client.set_registered_model_alias(self.name, self.cfg.canary_alias, version)
            self.reg.client.set_registered_model_tag(self.name, ROLLOUT_TAG, state.to_json())
            self._event("start", state, reason=reason or "rollout start",
                        gates={r.gate: r.passed for r in report.results})  # fmt: skip
        logger.info("%s: rollout of v%s started (%s, %.0f%%)", self.name, version, state.mode,
                    state.weight)  # fmt: skip
        return state

    def _require(self, lease: RegistryLease) -> RolloutState:
        self._repair(lease)
        tags, _ = self._model()
        state = parse_state(tags)
        if state is None:
            raise RolloutError(f"no rollout is in progress on {self.name!r}")
        return state

    def step(self, decision: Decision | None = None, manual: bool = False) -> RolloutState:
        """Raise the weight by ``step_points`` (a shadow canary goes live at ``initial_weight``).

        Raises:
            RolloutError: the step would reach 100 %: that step is the promotion, which ``run``
                takes once the checks pass (or ``sensorops models promote``).
        """
        with self._lease("step") as lease:
            state = self._require(lease)
            weight = self.next_weight(state)
            if weight >= 100.0:
                raise RolloutError(
                    f"the next step of v{state.version} ({state.weight:.0f}% -> 100%) is the "
                    "promotion; `sensorops rollout run` promotes once the checks pass"
                )
            new = state.stepped(weight, mode="live")
            new = replace(new, last=_last("step", decision, manual))
            lease.verify()
            self.reg.client.set_registered_model_tag(self.name, ROLLOUT_TAG, new.to_json())
            self._event(
                "step", new, weight_from=state.weight, mode_from=state.mode, manual=manual,
                **_numbers(decision),
            )  # fmt: skip
        logger.info("%s: canary v%s %s%% -> %s%%", self.name, new.version, state.weight, new.weight)
        return new

    def hold(self, state: RolloutState, decision: Decision) -> RolloutState:
        """Record a hold in the rollout tag (no history event: holds repeat every interval)."""
        with self._lease("hold") as lease:
            current = self._require(lease)
            if current.id != state.id or current.step != state.step:
                return current  # someone stepped or restarted meanwhile; decide again
            new = replace(current, holds=current.holds + 1, last=_last("hold", decision))
            lease.verify()
            self.reg.client.set_registered_model_tag(self.name, ROLLOUT_TAG, new.to_json())
        return new

    def abort(
        self, reason: str, decision: Decision | None = None, action: str = "abort"
    ) -> RolloutState:
        """Remove the canary: weight 0 (tag deleted) first, then ``@canary``; history gets why."""
        with self._lease(action) as lease:
            state = self._require(lease)
            lease.verify()
            self.reg.client.delete_registered_model_tag(self.name, ROLLOUT_TAG)
            self.reg.client.delete_registered_model_alias(self.name, self.cfg.canary_alias)
            self._event(action, state, weight_from=state.weight, reason=reason,
                        **_numbers(decision))  # fmt: skip
        logger.warning("%s: rollout of v%s %s: %s", self.name, state.version, action, reason)
        return state

    def promote(self, decision: Decision | None = None) -> str:
        """The canary becomes production through the gated transition; then the canary is cleared.

        A gate refusal rolls the canary back (``GateRefused`` is re-raised after the cleanup).
        """
        state = self.state()
        if state is None:
            raise RolloutError(f"no rollout is in progress on {self.name!r}")
        try:
            promote(
                self.reg, self.name, state.version, "production", config=self.promotion,
                mi=self.mi, reason=f"rollout {state.id}: canary at {state.weight:.0f}% passed",
            )  # fmt: skip
        except GateRefused as exc:
            self.abort(f"promotion refused at 100%: {exc}", decision, action="rollback")
            raise
        with self._lease("promoted") as lease:
            repair(self.reg, self.name, lease)
            tags, aliases = self._model()
            lease.verify()
            if ROLLOUT_TAG in tags:
                self.reg.client.delete_registered_model_tag(self.name, ROLLOUT_TAG)
            if self.cfg.canary_alias in aliases:
                self.reg.client.delete_registered_model_alias(self.name, self.cfg.canary_alias)
            self._event("promoted", state, replaced=state.production, **_numbers(decision))
        logger.info("%s: v%s promoted to production", self.name, state.version)
        return state.version

    # --- the loop -------------------------------------------------------------------------------

    def run(
        self,
        sleep: Callable[[float], None] = time.sleep,
        on_decision: Callable[[RolloutState, Decision], None] | None = None,
    ) -> int:
        """Decide every ``interval_s`` until promoted (0) or rolled back (1).

        The step that would reach 100 % is the promotion itself: it happens after the window at
        the last weight below 100 passed (at 100 % production has no traffic to compare with).

        Holds the rollout lease for its whole life (:class:`RolloutBusy`-like ``LockBusy``, exit 4,
        when another controller holds it). Resumes whatever the registry says is in progress.
        """
        with RegistryLease(
            self.reg, self.name, self.cfg.lock, purpose="rollout controller", tag=ROLLOUT_LOCK_TAG
        ) as lease:
            with self._lease("resume") as please:
                self._repair(please)
            while True:
                state = self.state()
                if state is None:
                    return self._ended()
                # one decision per interval; after n holds the window (still from the step)
                # is n + 1 intervals long
                due = state.step_started_at + self.cfg.interval_s * (state.holds + 1)
                while (wait := due + self.cfg.flush_grace_s - time.time()) > 0:
                    sleep(min(wait, self.cfg.lock.ttl_s / 3))
                    lease.renew()
                lease.renew()
                current = self.state()
                if current != state:
                    continue  # aborted, stepped by hand or restarted meanwhile
                if time.time() - state.started_at > self.cfg.max_duration_s:
                    self.abort(f"rollout exceeded max_duration_s={self.cfg.max_duration_s}",
                               action="rollback")  # fmt: skip
                    return 1
                decision = self.evaluate(state, until=due)
                if on_decision is not None:
                    on_decision(state, decision)
                logger.warning("%s v%s at %.0f%% (%s): %s - %s", self.name, state.version,
                               state.weight, state.mode, decision.action, decision.reason)  # fmt: skip
                if decision.action == "rollback":
                    self.abort(decision.reason, decision, action="rollback")
                    return 1
                if decision.action == "hold":
                    held = self.hold(state, decision)
                    if held.holds >= self.cfg.max_holds:
                        self.abort(f"{held.holds} holds in a row: {decision.reason}", decision,
                                   action="rollback")  # fmt: skip
                        return 1
                    continue
                if decision.action == "promote" or (state.mode == "live" and state.weight >= 100.0):
                    try:
                        self.promote(decision)
                    except GateRefused:
                        return 1
                    return 0
                self.step(decision)

    def _ended(self) -> int:
        """No rollout in progress: look at the history for how the last one ended."""
        for event in reversed(read_history(self.reg, self.name)):
            if event.get("kind") != "rollout":
                continue
            action = event.get("action")
            if action == "promoted":
                return 0
            if action in ("rollback", "abort", "repair"):
                return 1
            break
        raise NotFoundError(f"no rollout is in progress on {self.name!r}")


def _last(action: str, decision: Decision | None, manual: bool = False) -> dict[str, Any]:
    return {
        "action": action,
        "manual": manual,
        "reason": (decision.reason if decision else "manual")[:300],
        "at": round(time.time(), 3),
    }


def _numbers(decision: Decision | None) -> dict[str, Any]:
    """The window's numbers for a history event (compact: per arm, and each check's verdict)."""
    if decision is None:
        return {}
    keep = ("requests", "errors", "error_rate", "p50_ms", "p99_ms", "cpu_ms_per_series",
            "labelled", "accuracy", "versions")  # fmt: skip
    return {
        "decision": decision.action,
        "decision_reason": decision.reason[:800],
        "arms": {a: {k: v.get(k) for k in keep} for a, v in decision.arms.items()},
        "checks": {c.name: c.status for c in decision.checks},
    }
