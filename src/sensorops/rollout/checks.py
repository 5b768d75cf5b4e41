"""The controller's checks: canary vs production over one window, and the decision they make.

Every check compares the two arms over the same window (:func:`sensorops.rollout.armstats.arm_stats`)
and reports ``pass``, ``fail`` or ``hold`` (too little data) with the numbers it used:

- ``sample``: each arm answered at least ``min_requests`` requests;
- ``errors``: canary error rate minus production's exceeds ``max_error_rate_increase`` **and** a
  one-sided Fisher exact test rejects "the canary errs no more often" at ``error_alpha``;
- ``latency_p50`` / ``latency_p99``: ratio canary/production of the percentile, both floored at
  ``latency_floor_ms``; p99 only once each arm has ``min_requests_p99`` answers (a p99 of 20
  requests is their maximum);
- ``cpu``: ratio of model CPU milliseconds per series, floored at ``cpu_floor_ms``, compared at
  equal batch sizes (weighted by the canary's series): a batch's fixed cost is shared by its
  series, and the canary's share of traffic makes smaller batches, so a raw per-series mean
  would blame the same model for its small share (measured: 3.7 vs 2.3 ms at 5 %); ``skip``
  when no batch size has 3 series in both arms;
- ``accuracy``: on series whose label arrived (``POST /v1/feedback``), at least ``min_labelled``
  per arm; fails when production's accuracy minus the canary's exceeds
  ``max_accuracy_drop_points`` **and** a one-sided Fisher exact test (exact for small samples)
  rejects "the canary is as accurate" at ``accuracy_alpha``. A raw difference alone never fails
  a candidate, and a significant but tiny difference does not either.

The decision: any ``fail`` -> ``rollback``; else any ``hold`` -> ``hold``; else ``step``, or
``promote`` when the next step would reach 100 % (the promotion is that last step: at 100 %
production would get no traffic left to compare with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from scipy.stats import fisher_exact

from sensorops.rollout.armstats import ArmStats
from sensorops.rollout.config import ChecksConfig


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``status`` is ``pass``, ``fail``, ``hold`` or ``skip`` (not comparable)."""

    name: str
    status: str
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What the controller does next and why.

    Attributes:
        action: ``step``, ``hold``, ``rollback`` or ``promote``.
        reason: one sentence naming the deciding check(s) and their numbers.
        checks: every check.
        arms: the per-arm numbers (``ArmStats.to_dict()``).
    """

    action: str
    reason: str
    checks: tuple[Check, ...]
    arms: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
            "arms": self.arms,
        }


def _ratio(c: float, p: float, floor: float) -> float:
    return max(c, floor) / max(p, floor)


def fisher_worse(bad_c: int, good_c: int, bad_p: int, good_p: int) -> float:
    """One-sided Fisher exact p-value of "the canary's share of bad outcomes is larger"."""
    if bad_c + good_c == 0 or bad_p + good_p == 0:
        return 1.0
    _, p = fisher_exact([[bad_c, good_c], [bad_p, good_p]], alternative="greater")
    return float(p)


def run_checks(prod: ArmStats | None, canary: ArmStats | None, cfg: ChecksConfig) -> list[Check]:
    """Every check of :mod:`this module <sensorops.rollout.checks>` for one window."""
    n_p = prod.requests if prod else 0
    n_c = canary.requests if canary else 0
    if prod is None or canary is None or n_p < cfg.min_requests or n_c < cfg.min_requests:
        return [
            Check(
                "sample", "hold",
                f"too few requests: canary {n_c}, production {n_p} (need {cfg.min_requests} each)",
                {"canary": n_c, "production": n_p, "min_requests": cfg.min_requests},
            )
        ]  # fmt: skip
    checks = [Check("sample", "pass", f"canary {n_c}, production {n_p} requests",
                    {"canary": n_c, "production": n_p})]  # fmt: skip
    # errors
    diff = canary.error_rate - prod.error_rate
    p_err = fisher_worse(canary.errors, n_c - canary.errors, prod.errors, n_p - prod.errors)
    bad = diff > cfg.max_error_rate_increase and p_err < cfg.error_alpha
    checks.append(Check(
        "errors", "fail" if bad else "pass",
        f"error rate canary {canary.error_rate:.4f} vs production {prod.error_rate:.4f} "
        f"(+{diff:.4f}, allowed +{cfg.max_error_rate_increase}; one-sided Fisher p={p_err:.4g})",
        {"canary": round(canary.error_rate, 6), "production": round(prod.error_rate, 6),
         "increase": round(diff, 6), "p_value": round(p_err, 6), "alpha": cfg.error_alpha},
    ))  # fmt: skip
    # latency
    for name, attr, limit, need in (
        ("latency_p50", "p50_ms", cfg.max_p50_ratio, cfg.min_requests),
        ("latency_p99", "p99_ms", cfg.max_latency_ratio, cfg.min_requests_p99),
    ):
        c, p = getattr(canary, attr), getattr(prod, attr)
        ok_c, ok_p = (
            n_c - canary.errors - canary.client_errors,
            n_p - prod.errors - prod.client_errors,
        )
        if c is None or p is None or min(ok_c, ok_p) < need:
            if name == "latency_p99":
                continue  # p99 is compared only with enough answers; p50 covers small windows
            checks.append(Check(name, "hold", f"{name}: too few answered requests", {}))
            continue
        r = _ratio(c, p, cfg.latency_floor_ms)
        checks.append(Check(
            name, "fail" if r > limit else "pass",
            f"{attr[:3]} canary {c:.1f} ms vs production {p:.1f} ms: ratio {r:.2f} (allowed {limit})",
            {"canary_ms": round(c, 3), "production_ms": round(p, 3), "ratio": round(r, 4),
             "limit": limit},
        ))  # fmt: skip
    # cpu: batch size by batch size (a batch's fixed cost is shared by its series, and the
    # canary's few requests make smaller batches), weighted by the canary's series
    checks.append(_cpu_check(canary, prod, cfg))
    # accuracy
    if canary.labelled < cfg.min_labelled or prod.labelled < cfg.min_labelled:
        status = "hold" if cfg.require_accuracy else "pass"
        checks.append(Check(
            "accuracy", status,
            f"too few labels to compare accuracy: canary {canary.labelled}, production "
            f"{prod.labelled} (need {cfg.min_labelled} each)"
            + ("" if cfg.require_accuracy else "; not required"),
            {"canary_labelled": canary.labelled, "production_labelled": prod.labelled},
        ))  # fmt: skip
    else:
        acc_c, acc_p = canary.accuracy or 0.0, prod.accuracy or 0.0
        drop = (acc_p - acc_c) * 100.0
        p_acc = fisher_worse(canary.labelled - canary.correct, canary.correct,
                             prod.labelled - prod.correct, prod.correct)  # fmt: skip
        bad = drop > cfg.max_accuracy_drop_points and p_acc < cfg.accuracy_alpha
        checks.append(Check(
            "accuracy", "fail" if bad else "pass",
            f"accuracy canary {acc_c:.4f} ({canary.correct}/{canary.labelled}) vs production "
            f"{acc_p:.4f} ({prod.correct}/{prod.labelled}): drop {drop:.2f} points (allowed "
            f"{cfg.max_accuracy_drop_points}); one-sided Fisher p={p_acc:.4g}",
            {"canary": round(acc_c, 6), "production": round(acc_p, 6),
             "canary_labelled": canary.labelled, "production_labelled": prod.labelled,
             "drop_points": round(drop, 4), "p_value": round(p_acc, 6),
             "alpha": cfg.accuracy_alpha},
        ))  # fmt: skip
    return checks


def _cpu_check(canary: ArmStats, prod: ArmStats, cfg: ChecksConfig) -> Check:
    c_by, p_by = canary.cpu_by_batch or {}, prod.cpu_by_batch or {}
    common = sorted(n for n in c_by if n in p_by and min(c_by[n][0], p_by[n][0]) >= 3)
    if not common:
        return Check("cpu", "skip", "model CPU not compared: no batch size with 3 series in both arms",
                     {"canary_batches": sorted(c_by), "production_batches": sorted(p_by)})  # fmt: skip
    w = [c_by[n][0] for n in common]
    c = sum(wi * c_by[n][1] for wi, n in zip(w, common, strict=True)) / sum(w)
    p = sum(wi * p_by[n][1] for wi, n in zip(w, common, strict=True)) / sum(w)
    r = _ratio(c, p, cfg.cpu_floor_ms)
    return Check(
        "cpu", "fail" if r > cfg.max_cpu_ratio else "pass",
        f"model CPU per series at equal batch sizes {common[:6]}: canary {c:.2f} ms vs "
        f"production {p:.2f} ms: ratio {r:.2f} (allowed {cfg.max_cpu_ratio})",
        {"canary_ms": round(c, 4), "production_ms": round(p, 4), "ratio": round(r, 4),
         "batch_sizes": common, "limit": cfg.max_cpu_ratio},
    )  # fmt: skip


def decide(
    arms: dict[str, ArmStats],
    cfg: ChecksConfig,
    next_weight: float,
    production_arm: str = "production",
    canary_arm: str = "canary",
) -> Decision:
    """The next action given one window's numbers; ``next_weight`` is the weight a step would set."""
    prod, canary = arms.get(production_arm), arms.get(canary_arm)
    checks = run_checks(prod, canary, cfg)
    numbers = {k: v.to_dict() for k, v in arms.items()}
    failed = [c for c in checks if c.status == "fail"]
    held = [c for c in checks if c.status == "hold"]
    if failed:
        return Decision("rollback", "; ".join(c.message for c in failed), tuple(checks), numbers)
    if held:
        return Decision("hold", "; ".join(c.message for c in held), tuple(checks), numbers)
    action = "promote" if next_weight >= 100.0 else "step"
    return Decision(action, "every check passed", tuple(checks), numbers)
