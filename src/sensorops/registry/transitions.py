"""Stage transitions (promote, archive, rollback) with gates, audit trail and concurrency safety.

A transition of registered model ``NAME``:

1. takes the model's lease (:class:`~sensorops.registry.lock.RegistryLease`);
2. reads the registry state and runs the gates (:mod:`sensorops.registry.gates`) against it; a
   refusal raises :class:`GateRefused` and writes nothing to the registry;
3. snapshots the state, re-verifies the lease, then writes: stage tag, aliases, legacy stage mirror
   and audit tags on every version it touches, and one history event; if any write fails the
   snapshot is restored (:class:`TransitionFailed`), so no half-applied transition remains;
4. checks the invariants (:func:`consistency_problems`: one production version, aliases = stage
   tags = legacy stages); a violation also undoes the writes and the history event before
   :class:`TransitionFailed` is raised; then releases the lease.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

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
from sensorops.registry.history import append_event, delete_event, read_history
from sensorops.registry.lineage import actor
from sensorops.registry.lock import RegistryLease
from sensorops.registry.stages import LEGACY_STAGE, STAGE_ALIASES, STAGE_TAG, check_stage

logger = logging.getLogger(__name__)

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
    if len(prod) > 1:
        problems.append(f"{len(prod)} versions are in production: {prod}")
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


class _Writer:
    """Applies registry writes and remembers how to undo each of them."""

    def __init__(self, reg: Registry, name: str, legacy: bool) -> None:
        self.reg = reg
        self.name = name
        self.legacy = legacy
        self.undo: list[Callable[[], None]] = []

    def set_stage(self, state: ModelState, version: str, stage: str, audit: dict[str, str]) -> None:
        c, name = self.reg.client, self.name
        before = state.versions[version]
        for key, value in {STAGE_TAG: stage, **audit}.items():
            old = before.tags.get(key)
            c.set_model_version_tag(name, version, key, value)
            self.undo.append(
                (lambda k=key, o=old: c.set_model_version_tag(name, version, k, o))
                if old is not None
                else (lambda k=key: c.delete_model_version_tag(name, version, k))
            )
        if self.legacy:
            self.legacy = _set_legacy(self.reg, name, version, LEGACY_STAGE[stage])
            if self.legacy:
                self.undo.append(lambda: _set_legacy(self.reg, name, version, before.legacy_stage))

    def set_alias(self, state: ModelState, alias: str, version: str | None) -> None:
        c, name = self.reg.client, self.name
        old = state.aliases.get(alias)
        if old == version:
            return
        if version is None:
            c.delete_registered_model_alias(name, alias)
        else:
            c.set_registered_model_alias(name, alias, version)
        self.undo.append(
            (lambda: c.set_registered_model_alias(name, alias, old))
            if old is not None
            else (lambda: c.delete_registered_model_alias(name, alias))
        )

    def rollback(self) -> list[str]:
        errors = []
        for fn in reversed(self.undo):
            try:
                fn()
            except Exception as exc:  # keep undoing the rest
                errors.append(str(exc))
        return errors


def _set_legacy(reg: Registry, name: str, version: str, legacy_stage: str) -> bool:
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
        "reason": reason[:5000] or "-",
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
    """Write one transition; undo everything if a write fails or leaves the registry inconsistent."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    by = actor()
    current = state.versions[version].stage
    replaced = (
        [v for v in state.in_stage("production") if v != version] if target == "production" else []
    )
    lease.verify()
    writer = _Writer(reg, state.name, legacy=True)
    seq = None
    try:
        for old in replaced:
            writer.set_stage(
                state, old, "archived",
                _audit(kind, "production", "archived", evidence_run_id, f"replaced by v{version}", at, by),
            )  # fmt: skip
        writer.set_stage(
            state, version, target, _audit(kind, current, target, evidence_run_id, reason, at, by)
        )
        for stage, aliases in STAGE_ALIASES.items():
            for alias in aliases:
                if stage == target:
                    writer.set_alias(state, alias, version)
                elif state.aliases.get(alias) == version or (state.aliases.get(alias) in replaced):
                    writer.set_alias(state, alias, None)
        event = {
            "kind": kind,
            "version": version,
            "variant": state.versions[version].tags.get("sensorops.variant"),
            "from": current,
            "to": target,
            "replaced": replaced,
            "at": at,
            "by": by,
            "evidence_run_id": evidence_run_id,
            "reason": reason,
            **extra_event,
        }
        seq = append_event(reg, state.name, event)
    except Exception as exc:
        undo_errors = writer.rollback()
        if seq is not None:
            delete_event(reg, state.name, seq)
        detail = f"; undo errors: {undo_errors}" if undo_errors else "; partial changes were undone"
        raise TransitionFailed(
            f"{kind} of {state.name} v{version} to {target} failed: {exc}{detail}"
        ) from exc
    after = read_state(reg, state.name)
    problems = consistency_problems(after, legacy=writer.legacy)
    if problems:
        undo_errors = writer.rollback()
        try:
            delete_event(reg, state.name, seq)
        except Exception as exc:  # report it with the other undo errors
            undo_errors.append(f"history event #{seq}: {exc}")
        detail = f"; undo errors: {undo_errors}" if undo_errors else "; its changes were undone"
        raise TransitionFailed(
            f"registry inconsistent after {kind} of {state.name} v{version}: {problems}{detail}"
        )
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
