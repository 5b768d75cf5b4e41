"""Promotion gates: stage order, data quality, parity, compression, no regression vs production.

Every gate returns a :class:`GateResult` with the numbers it compared. The regression gate loads
the registry's *current* ``models:/NAME@production`` and the candidate ``models:/NAME/VERSION``
and scores both on the same test split, in the same process, so the comparison never relies on
stale logged numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sensorops.contracts import DataQualitySummary
from sensorops.contracts.data_quality import SPLITS
from sensorops.model_input import ModelInput
from sensorops.registry.client import Registry
from sensorops.registry.config import GateConfig
from sensorops.registry.errors import RegistryConfigError
from sensorops.registry.lineage import split_digest
from sensorops.registry.scoring import load_registered_logits, score
from sensorops.registry.stages import ALLOWED_FROM

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate.

    Attributes:
        gate: gate name (``stage_order``, ``data_quality``, ``parity``, ``compression``,
            ``no_regression``).
        passed: whether the gate lets the promotion through.
        message: one sentence with the numbers.
        numbers: the values compared.
    """

    gate: str
    passed: bool
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateReport:
    """All gate results of one promotion attempt, in evaluation order."""

    name: str
    version: str
    target: str
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def first_failure(self) -> GateResult | None:
        return next((r for r in self.results if not r.passed), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "target": self.target,
            "passed": self.passed,
            "results": [asdict(r) for r in self.results],
        }


def stage_order_gate(current: str, target: str) -> GateResult:
    """``candidate``/``archived`` -> ``staging`` -> ``production``; anything -> ``archived``."""
    allowed = ALLOWED_FROM.get(target, ())
    ok = current in allowed
    msg = (
        f"{current} -> {target} is allowed"
        if ok
        else f"a version in {current!r} cannot move to {target!r}; allowed from {list(allowed)}"
    )
    return GateResult("stage_order", ok, msg, {"from": current, "to": target})


def data_quality_gate(tags: dict[str, str]) -> GateResult:
    """Passed when ``dq.passed`` is true, no tier with ``action: fail`` failed, and the DQ results
    were made from this version's data (the rule of
    :meth:`sensorops.contracts.DataQualitySummary.verdict`, applied to the version's tags)."""
    current = {s: tags[f"data.{s}_digest"] for s in SPLITS if f"data.{s}_digest" in tags}
    verdict = DataQualitySummary.from_tags(tags).verdict(current, require_digests=False)
    failing = [f"dq.{k}" for k in verdict.failing]
    warned = [f"dq.{k}" for k in verdict.warned]
    recorded = tags.get("dq.passed")
    if recorded is None:
        msg = "no data-quality result was recorded on this version (tag dq.passed missing)"
    elif verdict.stale_splits:
        msg = (
            "the data-quality results were made from other data than this version's "
            f"({verdict.stale_splits} digests differ)"
        )
    elif verdict.passed:
        msg = "data-quality tiers passed" + (f" (warnings: {warned})" if warned else "")
    else:
        msg = f"data quality did not pass: dq.passed={recorded}, failing tiers {failing}"
    return GateResult(
        "data_quality",
        verdict.passed,
        msg,
        {
            "dq.passed": recorded,
            "failing": failing,
            "warnings": warned,
            "stale_splits": verdict.stale_splits,
        },
    )


def parity_gate(tags: dict[str, str]) -> GateResult:
    """Passed when the export parity check (``parity.passed``) passed."""
    value = tags.get("parity.passed")
    numbers = {k: v for k, v in tags.items() if k.startswith("parity.")}
    ok = value == "true"
    msg = (
        "ONNX parity passed"
        if ok
        else f"ONNX parity did not pass (parity.passed={value}); numbers {numbers}"
    )
    return GateResult("parity", ok, msg, numbers)


def compression_gate(tags: dict[str, str]) -> GateResult:
    """Passed for the uncompressed export (``n/a``) and for compression variants whose gate passed."""
    value = tags.get("compression.gate_passed")
    ok = value in ("true", "n/a")
    numbers = {k: v for k, v in tags.items() if k.startswith("compression.")}
    msg = (
        f"compression gate: {value}"
        if ok
        else f"compression variant {tags.get('sensorops.variant')!r} did not pass its gate "
        f"(compression.gate_passed={value}; delta_points={tags.get('compression.delta_points')})"
    )
    return GateResult("compression", ok, msg, numbers)


def regression_gate(
    reg: Registry,
    name: str,
    version: str,
    mi: ModelInput | None,
    metric: str,
    margin_points: float,
    production_version: str | None,
) -> GateResult:
    """Candidate's test ``metric`` must be >= current production's minus ``margin_points`` / 100.

    Both models are loaded from the registry (``models:/NAME/VERSION`` and
    ``models:/NAME@production``) and scored on ``mi.X["test"]`` (``(n_series, length, n_channels)``).
    """
    if production_version is None:
        return GateResult(
            "no_regression", True, "no current production version; nothing to compare", {}
        )
    if production_version == version:
        return GateResult(
            "no_regression", True, f"v{version} is the current production version", {}
        )
    if mi is None:
        raise RegistryConfigError(
            "the no_regression gate needs the test split (mi_model_input) to compare against "
            f"production v{production_version}; pass --model-input PATH"
        )
    X, y = mi.X["test"], mi.y["test"]
    with reg.fluent():
        cand = score(load_registered_logits(f"models:/{name}/{version}", X), y)
        prod = score(load_registered_logits(f"models:/{name}@production", X), y)
    c, p = cand.get(metric), prod.get(metric)
    drop_points = (p - c) * 100.0
    ok = c >= p - margin_points / 100.0 - 1e-12
    numbers = {
        "metric": metric,
        "candidate_version": version,
        "candidate": round(c, 6),
        "production_version": production_version,
        "production": round(p, 6),
        "drop_points": round(drop_points, 4),
        "margin_points": margin_points,
        "n_test": cand.n,
        "test_digest": split_digest(mi, "test"),
    }
    verdict = "within" if ok else "exceeds"
    msg = (
        f"{metric} of v{version} is {c:.4f} vs production v{production_version} {p:.4f} on "
        f"{cand.n} test series: drop {drop_points:.2f} points {verdict} the margin of {margin_points:.2f} points"
    )
    return GateResult("no_regression", ok, msg, numbers)


def evaluate_gates(
    reg: Registry,
    name: str,
    version: str,
    current_stage: str,
    target: str,
    tags: dict[str, str],
    production_version: str | None,
    gates: GateConfig,
    mi_loader: Callable[[], ModelInput | None],
) -> GateReport:
    """Run every gate for moving ``name`` v``version`` from ``current_stage`` to ``target``.

    Gates run in order and stop at the first failure (later gates would cost model loads for a
    promotion that is refused anyway). Moving to ``archived`` only checks the stage order.
    """
    from sensorops.registry.baseline_gate import baseline_gate  # it imports GateResult from here

    results = [stage_order_gate(current_stage, target)]
    checks: list[Callable[[], GateResult]] = []
    if target in ("staging", "production"):
        if gates.require_dq_passed:
            checks.append(lambda: data_quality_gate(tags))
        if gates.require_parity_passed:
            checks.append(lambda: parity_gate(tags))
        if gates.require_compression_gate:
            checks.append(lambda: compression_gate(tags))
        if gates.require_beats_baseline:
            checks.append(lambda: baseline_gate(tags, gates.regression_metric, gates.baseline_margin_points, gates.allow_below_baseline))  # fmt: skip
        margin = (
            gates.staging_margin_points if target == "staging" else gates.production_margin_points
        )
        checks.append(
            lambda: regression_gate(
                reg,
                name,
                version,
                mi_loader() if production_version not in (None, version) else None,
                gates.regression_metric,
                margin,
                production_version,
            )
        )
    for check in checks:
        if not results[-1].passed:
            break
        results.append(check())
    report = GateReport(name=name, version=version, target=target, results=tuple(results))
    for r in report.results:
        logger.info("gate %s for %s v%s -> %s: %s", r.gate, name, version, target, r.message)
    return report
