"""Stage transitions (promote, archive, rollback) with gates, audit trail and crash safety.

A transition of registered model ``NAME``:

1. takes the model's lease (:class:`~sensorops.registry.lock.RegistryLease`) and repairs what a
   dead process left half-done (:func:`~sensorops.registry.intent.repair_pending`);
2. reads the registry state and runs the gates (:mod:`sensorops.registry.gates`) against it; a
   refusal raises :class:`GateRefused` and writes nothing to the registry;
3. plans its writes as idempotent steps (stage tag, audit tag, legacy stage mirror on every
   version it touches, aliases, one history event) with their undo, writes them as an intent
   record, applies them and clears the intent; a kill anywhere in between is completed by the
   next command. If a write fails, the undo steps are applied (:class:`TransitionFailed`);
4. checks the invariants (:func:`consistency_problems`: one holder of staging and of
   production, aliases = stage tags = legacy stages); a violation the transition introduced also
   undoes it before :class:`TransitionFailed` is raised; then releases the lease.

Staging and production have at most one holder each: staging a version archives the previous
staging holder (it may be staged again later, ``archived -> staging`` is allowed), and promoting
to production archives the previous production version.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sensorops.faultpoints import kill_point
from sensorops.model_input import ModelInput
from sensorops.registry.client import Registry, lookup
from sensorops.registry.config import PromotionConfig
from sensorops.registry.errors import (
    GateRefused,
    NotFoundError,
    RegistryConfigError,
    TransitionFailed,
)
from sensorops.registry.evidence import evidence_run
from sensorops.registry.gates import GateReport, evaluate_gates
from sensorops.registry.history import read_history
from sensorops.registry.intent import (
    Intent,
    Repair,
    apply_step,
    apply_steps,
    clear_intent,
    repair_pending,
    write_intent,
)
from sensorops.registry.lineage import actor
from sensorops.registry.lock import RegistryLease
from sensorops.registry.stages import LEGACY_STAGE, STAGE_ALIASES, STAGE_TAG, check_stage

logger = logging.getLogger(__name__)

MAX_REASON = 500
"""Characters of a transition's reason kept in the audit tag, the history event and the intent
record (the intent must fit a registry tag value: 5000 characters in MLflow's SQL schema)."""

SINGLE_HOLDER = ("staging", "production")
"""Stages with at most one version; a new holder moves the previous one to ``archived``."""

AUDIT_TAG = "sensorops.transition"
"""Version tag holding the JSON of the last transition (kind, from, to, at, by, evidence_run_id, reason)."""


@dataclass(frozen=True)
class VersionState:
    """What the registry says about one version."""

    version: str
    stage: str
    legacy_stage: str
    tags: dict[str, str]


@dataclass(frozen=True)
class ModelState:
    """Registry state of one registered model: versions (by number) and aliases."""

    name: str
    versions: dict[str, VersionState]
    aliases: dict[str, str]

    def in_stage(self, stage: str) -> list[str]:
        return sorted((v.version for v in self.versions.values() if v.stage == stage), key=int)

    @property
    def production(self) -> str | None:
        return self.aliases.get("production")


@dataclass(frozen=True)
class TransitionResult:
    """Outcome of a successful transition.

    Attributes:
        name: registered model name.
        version: the version that moved.
        from_stage: its stage before.
        to_stage: its stage now.
        replaced: versions archived because ``version`` took their place.
        seq: sequence number of the history event.
        evidence_run_id: MLflow run holding the gate numbers.
        gates: gate report as a dict (empty for rollbacks).
        kind: ``promote`` or ``rollback``.
    """

    name: str
    version: str
    from_stage: str
    to_stage: str
    replaced: list[str]
    seq: int
    evidence_run_id: str
    gates: dict[str, Any] = field(default_factory=dict)
    kind: str = "promote"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stage_of(tags: dict[str, str], legacy: str) -> str:
    if STAGE_TAG in tags:
        return tags[STAGE_TAG]
    return {v: k for k, v in LEGACY_STAGE.items()}.get(legacy or "None", "candidate")


def read_state(reg: Registry, name: str) -> ModelState:
    """Read every version and alias of ``name``.

    Raises:
        NotFoundError: no registered model ``name``.
    """
    rm = lookup(lambda: reg.client.get_registered_model(name), f"registered model {name!r}")
    versions = {}
    for mv in reg.client.search_model_versions(f"name='{name}'"):
        tags = dict(mv.tags or {})
        versions[str(mv.version)] = VersionState(
            version=str(mv.version),
            stage=_stage_of(tags, mv.current_stage),
            legacy_stage=mv.current_stage or "None",
            tags=tags,
        )
    aliases = {alias: str(v) for alias, v in (rm.aliases or {}).items()}
    return ModelState(name=name, versions=versions, aliases=aliases)


def consistency_problems(state: ModelState, legacy: bool = True) -> list[str]:
    """Disagreements between stage tags, aliases and legacy stages (empty list = consistent)."""
    problems = []
    prod = state.in_stage("production")
    for stage in SINGLE_HOLDER:
        holders = state.in_stage(stage)
        if len(holders) > 1:
            problems.append(f"{len(holders)} versions are in {stage}: {holders}")
    expected_prod = prod[0] if len(prod) == 1 else None
    for alias in STAGE_ALIASES["production"]:
        if state.aliases.get(alias) != expected_prod:
            problems.append(
                f"@{alias} -> {state.aliases.get(alias)} but production stage tag on {prod}"
            )
    staging_alias = state.aliases.get("staging")
    if staging_alias is not None and staging_alias not in state.in_stage("staging"):
        problems.append(f"@staging -> v{staging_alias}, which is not in stage staging")
    if legacy:
        for v in state.versions.values():
            if v.legacy_stage != LEGACY_STAGE[v.stage]:
                problems.append(f"v{v.version}: stage {v.stage} but legacy stage {v.legacy_stage}")
    return problems


def _plan_stage(
    state: ModelState, version: str, stage: str, audit: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Steps (and their undo) that move ``version`` to ``stage``: stage + audit tags, legacy stage."""
    before = state.versions[version]
    steps, undo = [], []
    for key, value in {STAGE_TAG: stage, **audit}.items():
        steps.append({"op": "vtag", "version": version, "key": key, "value": value})
        undo.append({"op": "vtag", "version": version, "key": key, "value": before.tags.get(key)})
    steps.append({"op": "legacy", "version": version, "stage": LEGACY_STAGE[stage]})
    undo.append({"op": "legacy", "version": version, "stage": before.legacy_stage})
    return steps, undo


def _plan_alias(
    state: ModelState, alias: str, version: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    old = state.aliases.get(alias)
    if old == version:
        return [], []
    return (
        [{"op": "alias", "alias": alias, "version": version}],
        [{"op": "alias", "alias": alias, "version": old}],
    )


def _audit(
    kind: str, from_stage: str, to_stage: str, evidence_run_id: str, reason: str, at: str, by: str
) -> dict[str, str]:
    """The audit version tag, one JSON value (one write instead of seven)."""
    record = {
        "kind": kind,
        "from": from_stage,
        "to": to_stage,
        "at": at,
        "by": by,
        "evidence_run_id": evidence_run_id,
        "reason": reason[:MAX_REASON] or "-",
    }
    return {AUDIT_TAG: json.dumps(record, sort_keys=True)}


def audit_record(tags: dict[str, str]) -> dict[str, str]:
    """The last transition of a version, decoded from its tags (empty if it never moved)."""
    try:
        return json.loads(tags.get(AUDIT_TAG, "{}"))
    except json.JSONDecodeError:
        return {}


def _apply(
    reg: Registry,
    lease: RegistryLease,
    state: ModelState,
    version: str,
    target: str,
    kind: str,
    evidence_run_id: str,
    reason: str,
    extra_event: dict[str, Any],
) -> TransitionResult:
    """Write one transition through an intent record (:mod:`sensorops.registry.intent`).

    Staging and production each have one holder: the version that takes the stage moves the
    previous holder(s) to ``archived`` (an archived version may be staged again). An in-process
    failure, or a write that leaves the registry less consistent than before, undoes every step.
    """
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    by = actor()
    current = state.versions[version].stage
    replaced = (
        [v for v in state.in_stage(target) if v != version] if target in SINGLE_HOLDER else []
    )
    steps: list[dict[str, Any]] = []
    undo: list[dict[str, Any]] = []

    def add(plan: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
        steps.extend(plan[0])
        undo.extend(plan[1])

    for old in replaced:
        add(_plan_stage(
            state, old, "archived",
            _audit(kind, target, "archived", evidence_run_id, f"replaced by v{version}", at, by),
        ))  # fmt: skip
    from_stage = current
    if current == "production" and state.production != version:
        # tagged production but never held @production (a half-applied promotion of an older
        # release): record where it really was, never a production -> archived move
        legacy = {v: k for k, v in LEGACY_STAGE.items()}.get(state.versions[version].legacy_stage)
        from_stage = legacy if legacy not in (None, "production") else "staging"
        extra_event = {**extra_event, "never_held_production": True}
    add(_plan_stage(
        state, version, target, _audit(kind, from_stage, target, evidence_run_id, reason, at, by)
    ))  # fmt: skip
    for stage, aliases in STAGE_ALIASES.items():
        for alias in aliases:
            if stage == target:
                add(_plan_alias(state, alias, version))
            elif state.aliases.get(alias) == version or state.aliases.get(alias) in replaced:
                add(_plan_alias(state, alias, None))
    history = read_history(reg, state.name)
    seq = max((e["seq"] for e in history), default=0) + 1
    event = {
        "kind": kind,
        "version": version,
        "variant": state.versions[version].tags.get("sensorops.variant"),
        "from": from_stage,
        "to": target,
        "replaced": replaced,
        "at": at,
        "by": by,
        "evidence_run_id": evidence_run_id,
        "reason": reason[:MAX_REASON],
        **extra_event,
    }
    steps.append({"op": "event", "seq": seq, "event": event})
    undo.append({"op": "event", "seq": seq, "event": None})
    undo.reverse()
    summary = f"{kind} of v{version} {current} -> {target}"
    intent = Intent(kind="transition", owner=lease.owner, summary=summary, steps=steps, undo=undo)
    before_problems = set(consistency_problems(state))
    lease.verify()
    write_intent(reg, state.name, intent)
    kill_point("transition.after_intent")
    done: list[int] = []
    try:
        legacy = apply_steps(reg, state.name, steps, "transition.step", done)
        lease.verify()
        after = read_state(reg, state.name)
        problems = [
            p for p in consistency_problems(after, legacy=legacy) if p not in before_problems
        ]
    except Exception as exc:
        undo_errors = _undo(reg, state.name, intent, len(done))
        detail = f"; undo errors: {undo_errors}" if undo_errors else "; partial changes were undone"
        raise TransitionFailed(
            f"{kind} of {state.name} v{version} to {target} failed: {exc}{detail}"
        ) from exc
    if problems:
        undo_errors = _undo(reg, state.name, intent, len(steps))
        detail = f"; undo errors: {undo_errors}" if undo_errors else "; its changes were undone"
        raise TransitionFailed(
            f"registry inconsistent after {kind} of {state.name} v{version}: {problems}{detail}"
        )
    kill_point("transition.before_clear")
    clear_intent(reg, state.name)
    return TransitionResult(
        name=state.name,
        version=version,
        from_stage=current,
        to_stage=target,
        replaced=replaced,
        seq=seq,
        evidence_run_id=evidence_run_id,
        kind=kind,
    )


def _undo(reg: Registry, name: str, intent: Intent, n_done: int) -> list[str]:
    """Undo the first ``n_done`` steps of ``intent``: re-point the intent at their undo steps
    (so a kill now is completed as an undo), apply them, clear it; the errors met on the way."""
    errors = []
    undo = intent.undo[len(intent.undo) - n_done :] if n_done else []
    undo_intent = Intent(
        kind="transition",
        owner=intent.owner,
        summary=f"undo of {intent.summary}",
        steps=undo,
        mode="undo",
        id=intent.id,
    )
    try:
        write_intent(reg, name, undo_intent)
    except Exception as exc:  # keep undoing; the old intent (apply) stays for the repair
        errors.append(f"intent: {exc}")
    for step in undo:
        try:
            apply_step(reg, name, step)
        except Exception as exc:  # keep undoing the rest
            errors.append(str(exc))
    if not errors:
        try:
            clear_intent(reg, name)
        except Exception as exc:
            errors.append(f"intent: {exc}")
    return errors


def repair(reg: Registry, name: str, lease: RegistryLease) -> Repair | None:
    """Repair what a dead process left half-done on ``name`` (see :func:`repair_pending`)."""
    return repair_pending(reg, name, lease.owner)


def promote(
    reg: Registry,
    name: str,
    version: str | int,
    target: str,
    config: PromotionConfig | None = None,
    mi: ModelInput | Callable[[], ModelInput] | None = None,
    reason: str = "",
) -> TransitionResult:
    """Move ``name`` v``version`` to ``target`` (``staging``, ``production`` or ``archived``) through the gates.

    Args:
        reg: connected registry.
        name: registered model name.
        version: version number.
        target: stage to move to.
        config: gates, margins and lease settings.
        mi: model input (or a loader for it) whose test split feeds the no-regression gate;
            only loaded when a different production version exists.
        reason: free text stored in the audit trail.

    Returns:
        The applied transition.

    Raises:
        NotFoundError: unknown model or version.
        GateRefused: a gate failed; the registry is unchanged.
        LockBusy: another promotion holds the lease.
        TransitionFailed: a write failed; partial changes were undone.
    """
    cfg = config or PromotionConfig()
    version = str(version)
    try:
        check_stage(target)
    except ValueError as exc:
        raise RegistryConfigError(str(exc)) from exc
    if target == "candidate":
        raise RegistryConfigError(
            "versions cannot be moved back to 'candidate'; archive them instead"
        )
    lookup(
        lambda: reg.client.get_model_version(name, version),
        f"version {version} of registered model {name!r}",
    )

    def load_mi() -> ModelInput | None:
        return mi() if callable(mi) else mi

    with (
        RegistryLease(reg, name, cfg.lock, purpose=f"promote v{version} to {target}") as lease,
        evidence_run(reg, cfg.experiment_name, f"promote-{name}-v{version}-{target}") as evidence,
    ):
        repair(reg, name, lease)
        state = read_state(reg, name)
        vs = state.versions[version]
        report: GateReport = evaluate_gates(
            reg, name, version, vs.stage, target, vs.tags, state.production, cfg.gates, load_mi
        )
        _log_report(evidence, report)
        failure = report.first_failure
        if failure is not None:
            raise GateRefused(
                f"promotion of {name} v{version} to {target} refused by gate '{failure.gate}': {failure.message}",
                gate=failure.gate,
                numbers=failure.numbers,
                report=report.to_dict(),
            )
        result = _apply(
            reg, lease, state, version, target, "promote", evidence.run_id, reason,
            {"gates": {r.gate: r.passed for r in report.results}},
        )  # fmt: skip
        evidence.log(
            tags={"sensorops.promotion.outcome": "applied", "sensorops.promotion.seq": result.seq}
        )
    logger.info(
        "%s v%s: %s -> %s (replaced %s)", name, version, result.from_stage, target, result.replaced
    )
    return TransitionResult(**{**result.to_dict(), "gates": report.to_dict()})


def _log_report(evidence: Any, report: GateReport) -> None:
    prefix = f"promotion.v{report.version}.{report.target}"
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {
        f"sensorops.{prefix}.outcome": "passed"
        if report.passed
        else f"refused:{report.first_failure.gate}"
    }
    for r in report.results:
        tags[f"sensorops.{prefix}.{r.gate}"] = ("pass: " if r.passed else "FAIL: ") + r.message
        for key in ("candidate", "production", "drop_points"):
            if isinstance(r.numbers.get(key), int | float):
                metrics[f"{prefix}.{key}"] = float(r.numbers[key])
    evidence.log(metrics=metrics, tags=tags)


def production_lineage(events: list[dict[str, Any]]) -> list[str]:
    """Replay history into the stack of production versions (last = current).

    Promotions to production push; a rollback pops the version it replaced; archiving the
    production version pops it.
    """
    stack: list[str] = []
    for e in events:
        if e.get("kind") == "repair":
            for v, stage in (e.get("moves") or {}).items():
                if stage != "production" and v in stack:
                    stack.remove(v)
            continue
        v = str(e.get("version"))
        if e.get("to") == "production":
            if e.get("kind") == "rollback":
                while stack and stack[-1] != v:
                    stack.pop()
                if not stack:
                    stack.append(v)
            else:
                stack.append(v)
        elif (
            e.get("to") == "archived" and e.get("from") == "production" and stack and stack[-1] == v
        ):
            stack.pop()
    return stack


def rollback(
    reg: Registry,
    name: str,
    config: PromotionConfig | None = None,
    to_version: str | int | None = None,
    reason: str = "",
) -> TransitionResult:
    """Restore the previous production version of ``name`` in one step and archive the current one.

    The previous version is read from the history (:func:`production_lineage`), so repeated
    rollbacks walk further back. Gates are not re-run: the target already served production.

    Raises:
        NotFoundError: unknown model, or no earlier production version to go back to.
        RegistryConfigError: ``to_version`` never was in production.
    """
    cfg = config or PromotionConfig()
    with (
        RegistryLease(reg, name, cfg.lock, purpose="rollback") as lease,
        evidence_run(reg, cfg.experiment_name, f"rollback-{name}") as evidence,
    ):
        repair(reg, name, lease)
        state = read_state(reg, name)
        current = state.production
        if current is None:
            raise NotFoundError(
                f"registered model {name!r} has no @production version to roll back"
            )
        stack = [v for v in production_lineage(read_history(reg, name)) if v in state.versions]
        earlier = [v for v in stack if v != current]
        if to_version is not None:
            target = str(to_version)
            if target not in earlier:
                raise RegistryConfigError(
                    f"v{target} of {name!r} was never a previous production version; earlier ones: {earlier}"
                )
        elif not earlier:
            raise NotFoundError(
                f"registered model {name!r} has no previous production version (history: {stack})"
            )
        else:
            target = earlier[-1]
        from_stage = state.versions[target].stage
        evidence.log(tags={"sensorops.rollback": f"v{current} -> v{target}"})
        result = _apply(
            reg, lease, state, target, "production", "rollback", evidence.run_id,
            reason or f"rollback from v{current}", {"rolled_back": current, "restored_from": from_stage},
        )  # fmt: skip
    logger.info("%s rolled back: production v%s -> v%s", name, current, target)
    return result
