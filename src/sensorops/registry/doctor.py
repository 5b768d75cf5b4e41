"""``sensorops models doctor NAME [--fix]``: find every inconsistency of a registered model, and fix it.

Checks (each :class:`Problem` says what is wrong and what ``--fix`` does about it):

=====================  =========================================================================
check                  fix
=====================  =========================================================================
``intent``             an intent record of a dead (or timed-out) process: completed or undone
                       (:func:`~sensorops.registry.intent.repair_pending`); a live holder's
                       intent is only reported
``several_holders``    staging/production held by several versions: the alias holder (else the
                       newest) keeps the stage, the others are archived
``tag_without_alias``  a version tagged staging/production that does not hold the stage's alias
                       (a half-applied promotion of an older release): archived, with
                       ``never_held_production`` so no production -> archived move is recorded
``alias_mismatch``     an alias on a version whose stage tag disagrees: on an archived or
                       candidate version the alias is removed, otherwise the tag follows the alias
``champion``           ``@champion`` differs from ``@production``: re-pointed at it
``legacy_stage``       MLflow's legacy stage differs from the stage tag: set from the tag
``artifact_missing``   a version whose model artifact is gone (or whose status is not READY):
                       archived when it holds no alias; an alias holder is only reported (roll
                       back or promote another version)
``history``            replaying the history does not give the stage tags: a ``repair`` event
                       recording the present stages is appended
=====================  =========================================================================

Every fix is one crash-safe change (intent record, steps, one ``repair`` history event).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sensorops.registry.client import Registry
from sensorops.registry.config import PromotionConfig
from sensorops.registry.evidence import close_dead_runs_in
from sensorops.registry.history import read_history
from sensorops.registry.intent import (
    Intent,
    Repair,
    apply_steps,
    clear_intent,
    read_intent,
    repair_pending,
    write_intent,
)
from sensorops.registry.lineage import actor
from sensorops.registry.lock import RegistryLease
from sensorops.registry.stages import LEGACY_STAGE, STAGE_ALIASES, STAGE_TAG
from sensorops.registry.transitions import SINGLE_HOLDER, ModelState, read_state

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One inconsistency: ``check`` (see the module table), ``message`` and ``fix`` (what --fix does)."""

    check: str
    message: str
    fix: str
    version: str | None = None
    auto: bool = True
    moves: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str | None] = field(default_factory=dict)
    legacy: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("moves", "aliases", "legacy")}


def replay_history(events: list[dict[str, Any]]) -> dict[str, str]:
    """Stage of each version according to the history alone (versions never mentioned are absent)."""
    stages: dict[str, str] = {}
    for e in events:
        if e.get("kind") == "repair":
            stages.update({str(k): v for k, v in (e.get("moves") or {}).items()})
            continue
        if e.get("version") is None or e.get("to") is None:
            continue
        for r in e.get("replaced") or []:
            stages[str(r)] = "archived"
        stages[str(e["version"])] = str(e["to"])
    return stages


def artifact_ok(reg: Registry, mv: Any) -> bool:
    """The version is READY and its model artifact (``MLmodel``) is still stored."""
    if str(mv.status) != "READY":
        return False
    import mlflow.artifacts

    try:
        with reg.fluent():
            names = [f.path.rsplit("/", 1)[-1] for f in mlflow.artifacts.list_artifacts(mv.source)]
    except Exception as exc:
        logger.info("artifact of v%s (%s) cannot be listed: %s", mv.version, mv.source, exc)
        return False
    return "MLmodel" in names


def diagnose(
    reg: Registry, name: str, check_artifacts: bool = True
) -> tuple[Intent | None, list[Problem]]:
    """The pending intent (if any) and every other inconsistency of ``name``; writes nothing."""
    intent = read_intent(reg, name)
    problems: list[Problem] = []
    if intent is not None:
        alive = intent.holder_alive()
        state = {True: "alive", False: "dead", None: "on another host"}[alive]
        problems.append(
            Problem(
                "intent",
                f"{intent.describe()}; holder is {state}",
                "complete or undo it" if alive is not True else "none while its holder runs",
                auto=alive is not True,
            )
        )
    state = read_state(reg, name)
    problems += _state_problems(state)
    if check_artifacts:
        aliased = set(state.aliases.values())
        for mv in reg.client.search_model_versions(f"name='{name}'"):
            v = str(mv.version)
            if state.versions[v].stage == "archived" or artifact_ok(reg, mv):
                continue
            held = v in aliased
            problems.append(
                Problem(
                    "artifact_missing",
                    f"v{v}: model artifact {mv.source} is missing (status {mv.status})",
                    "none: it holds an alias; roll back or promote another version"
                    if held
                    else "archive it",
                    version=v,
                    auto=not held,
                    moves={} if held else {v: "archived"},
                )
            )
    replayed = replay_history(read_history(reg, name))
    after_fixes = _stages_after(state, problems)
    wrong = {
        v: (replayed[v], state.versions[v].stage)
        for v in sorted(replayed, key=int)
        if v in state.versions and replayed[v] != state.versions[v].stage
    }
    if wrong:
        problems.append(
            Problem(
                "history",
                "history replays to other stages than the registry holds: "
                + ", ".join(f"v{v} history {h} / stage {s}" for v, (h, s) in wrong.items()),
                "append a repair event recording the stages after the fixes",
                moves={v: after_fixes[v] for v in wrong},
            )
        )
    return intent, problems


def _stages_after(state: ModelState, problems: list[Problem]) -> dict[str, str]:
    stages = {v: s.stage for v, s in state.versions.items()}
    for p in problems:
        if p.auto:
            stages.update(p.moves)
    return stages


def _state_problems(state: ModelState) -> list[Problem]:
    problems: list[Problem] = []
    moved: dict[str, str] = {}
    for stage in SINGLE_HOLDER:
        alias = STAGE_ALIASES[stage][0]
        holder = state.aliases.get(alias)
        tagged = state.in_stage(stage)
        if (
            holder is not None
            and holder in state.versions
            and state.versions[holder].stage != stage
        ):
            tag = state.versions[holder].stage
            if tag in ("archived", "candidate"):
                rightful = tagged[0] if len(tagged) == 1 else None  # the version tagged so
                problems.append(
                    Problem(
                        "alias_mismatch",
                        f"@{alias} -> v{holder}, which is {tag}",
                        (f"point @{alias} at v{rightful}" if rightful else f"remove @{alias}")
                        + (" (and @champion)" if stage == "production" else ""),
                        version=holder,
                        aliases={a: rightful for a in STAGE_ALIASES[stage]},
                    )
                )
                holder = rightful
            else:
                problems.append(
                    Problem(
                        "alias_mismatch",
                        f"@{alias} -> v{holder}, whose stage tag is {tag}",
                        f"set its stage tag to {stage}",
                        version=holder,
                        moves={holder: stage},
                    )
                )
                moved[holder] = stage
                tagged = sorted({*tagged, holder}, key=int)
        keep = holder if holder in tagged else None
        extra = [v for v in tagged if v != keep]
        if len(tagged) > 1:
            problems.append(
                Problem(
                    "several_holders",
                    f"{len(tagged)} versions are in {stage}: {['v' + v for v in tagged]}"
                    + (f" (@{alias} -> v{keep})" if keep else f" (no @{alias})"),
                    f"archive {['v' + v for v in extra]}",
                    moves={v: "archived" for v in extra},
                )
            )
        elif extra:
            v = extra[0]
            problems.append(
                Problem(
                    "tag_without_alias",
                    f"v{v} is tagged {stage} but @{alias} -> "
                    + (f"v{state.aliases[alias]}" if alias in state.aliases else "nothing"),
                    "archive it (it never held the alias: no production -> archived move)",
                    version=v,
                    moves={v: "archived"},
                )
            )
        moved.update({v: "archived" for v in extra})
    prod = state.aliases.get("production")
    for alias in STAGE_ALIASES["production"][1:]:
        if state.aliases.get(alias) != prod and not any(
            p.check == "alias_mismatch" and alias in p.aliases for p in problems
        ):
            problems.append(
                Problem(
                    "champion",
                    f"@{alias} -> {state.aliases.get(alias)} but @production -> {prod}",
                    f"point @{alias} at {prod}" if prod else f"remove @{alias}",
                    aliases={alias: prod},
                )
            )
    for v, vs in sorted(state.versions.items(), key=lambda kv: int(kv[0])):
        stage = moved.get(v, vs.stage)
        if vs.legacy_stage != LEGACY_STAGE[stage] and v not in moved:
            problems.append(
                Problem(
                    "legacy_stage",
                    f"v{v}: stage {stage} but legacy stage {vs.legacy_stage}",
                    f"set legacy stage {LEGACY_STAGE[stage]}",
                    version=v,
                    legacy={v: LEGACY_STAGE[stage]},
                )
            )
    return problems


@dataclass(frozen=True)
class DoctorReport:
    """Outcome of :func:`doctor`: the problems found, the repair of a pending intent, the fixes."""

    name: str
    problems: list[Problem]
    repaired: Repair | None = None
    fixed: bool = False
    remaining: list[Problem] = field(default_factory=list)
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "problems": [p.to_dict() for p in self.problems],
            "repaired": self.repaired.to_dict() if self.repaired else None,
            "fixed": self.fixed,
            "remaining": [p.to_dict() for p in self.remaining],
            "seq": self.seq,
        }


def doctor(
    reg: Registry, name: str, fix: bool = False, config: PromotionConfig | None = None
) -> DoctorReport:
    """Diagnose ``name``; with ``fix``, take the lease, repair the pending intent and fix the rest."""
    _, problems = diagnose(reg, name)
    if not fix or not problems:
        return DoctorReport(name=name, problems=problems, remaining=problems)
    cfg = config or PromotionConfig()
    with RegistryLease(reg, name, cfg.lock, purpose="doctor --fix") as lease:
        repaired = repair_pending(reg, name, lease.owner)
        close_dead_runs_in(reg, cfg.experiment_name)
        _, todo = diagnose(reg, name)
        seq = _apply_fixes(reg, name, lease, [p for p in todo if p.auto]) if todo else None
    _, remaining = diagnose(reg, name)
    return DoctorReport(
        name=name, problems=problems, repaired=repaired, fixed=True, remaining=remaining, seq=seq
    )


def _apply_fixes(
    reg: Registry, name: str, lease: RegistryLease, problems: list[Problem]
) -> int | None:
    if not problems:
        return None
    state = read_state(reg, name)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    moves: dict[str, str] = {}
    aliases: dict[str, str | None] = {}
    legacy: dict[str, str] = {}
    for p in problems:
        moves.update(p.moves)
        aliases.update(p.aliases)
        legacy.update(p.legacy)
    steps: list[dict[str, Any]] = []
    for v, stage in sorted(moves.items(), key=lambda kv: int(kv[0])):
        if state.versions[v].stage != stage:
            steps.append({"op": "vtag", "version": v, "key": STAGE_TAG, "value": stage})
        legacy[v] = LEGACY_STAGE[stage]
        for s, names in STAGE_ALIASES.items():
            for a in names:
                if state.aliases.get(a) == v and s != stage:
                    aliases.setdefault(a, None)
    for v, stage in sorted(legacy.items(), key=lambda kv: int(kv[0])):
        steps.append({"op": "legacy", "version": v, "stage": stage})
    for a, v in sorted(aliases.items()):
        if state.aliases.get(a) != v:
            steps.append({"op": "alias", "alias": a, "version": v})
    seq = max((e["seq"] for e in read_history(reg, name)), default=0) + 1
    event = {
        "kind": "repair",
        "action": "doctor --fix",
        "version": None,
        "from": None,
        "to": None,
        "moves": moves,
        "never_held_production": sorted(
            v for v in moves if state.versions[v].stage == "production" and state.production != v
        ),
        "fixed": [p.message[:200] for p in problems[:10]],
        "at": at,
        "by": actor(),
        "reason": "; ".join(p.check for p in problems)[:500],
    }
    steps.append({"op": "event", "seq": seq, "event": event})
    intent = Intent(kind="transition", owner=lease.owner, summary="doctor --fix", steps=steps)
    lease.verify()
    write_intent(reg, name, intent)
    apply_steps(reg, name, steps, "repair.step")
    clear_intent(reg, name)
    return seq
