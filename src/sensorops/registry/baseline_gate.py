"""The baseline gate: never stage a model below the same run's 1-NN DTW baseline (minus a margin).

Registration tags the base variant with the evaluation report's scalars (``eval.*``), among them
``eval.baseline_accuracy`` / ``eval.baseline_macro_f1`` (the textbook 1-NN DTW baseline scored
in the same run, on the same test series) and ``eval.baseline_name``. The candidate's own score
is ``metric.test_<metric>``, measured on the registered ONNX model at registration.

Refused when ``candidate < baseline - margin_points / 100`` unless
``promotion.gates.allow_below_baseline`` is true (the explicit override, reported as such).
The message names both numbers.
"""

from __future__ import annotations

from sensorops.registry.gates import GateResult


def baseline_gate(
    tags: dict[str, str], metric: str, margin_points: float, allow_below_baseline: bool
) -> GateResult:
    """Compare ``metric.test_<metric>`` with ``eval.baseline_<metric>`` of the same run.

    A version without a recorded baseline (a compression variant, or a run without evaluation)
    passes with a message saying so: there is nothing of the same run to compare with.
    """
    cand_raw = tags.get(f"metric.test_{metric}")
    base_raw = tags.get(f"eval.baseline_{metric}")
    name = tags.get("eval.baseline_name", "baseline")
    if base_raw is None or cand_raw is None:
        return GateResult(
            "beats_baseline",
            True,
            f"no same-run baseline recorded on this version (eval.baseline_{metric}="
            f"{base_raw}, metric.test_{metric}={cand_raw}); nothing to compare",
            {"metric": metric, "candidate": cand_raw, "baseline": base_raw},
        )
    cand, base = float(cand_raw), float(base_raw)
    gap_points = (base - cand) * 100.0
    below = cand < base - margin_points / 100.0 - 1e-12
    numbers = {
        "metric": metric,
        "candidate": round(cand, 6),
        "baseline": round(base, 6),
        "baseline_name": name,
        "gap_points": round(gap_points, 4),
        "margin_points": margin_points,
        "override": allow_below_baseline,
    }
    summary = (
        f"test {metric} {cand:.4f} vs the same run's {name} {base:.4f} "
        f"({-gap_points:+.2f} points; margin {margin_points:.2f} points)"
    )
    if not below:
        return GateResult("beats_baseline", True, summary, numbers)
    if allow_below_baseline:
        return GateResult(
            "beats_baseline",
            True,
            f"{summary}: BELOW the baseline, allowed by promotion.gates.allow_below_baseline",
            numbers,
        )
    return GateResult(
        "beats_baseline",
        False,
        f"{summary}: below the baseline by more than the margin; set "
        "promotion.gates.allow_below_baseline: true to stage it anyway",
        numbers,
    )
