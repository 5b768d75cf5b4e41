"""The drift tier: the window against the training reference, with multiple testing controlled.

Signals (each one two-sample test against the reference, on the per-series statistics the
service logs):

- ``mean:<channel>`` and ``std:<channel>``: Kolmogorov-Smirnov on the per-series raw mean and
  standard deviation of each channel (a stuck channel collapses its ``std``; a gain moves both;
  an offset moves ``mean``; a slow covariate shift moves ``mean`` in late buckets first);
- ``alignment_cost``: KS on the DTW cost to the nearest reference (a series that fits no
  training template: a new regime or a new fault);
- ``confidence``: KS on the winning class probability;
- ``predicted``: chi-square test of the predicted-class counts against the reference's.

All p-values go through one Benjamini-Hochberg (or Bonferroni) correction at ``drift.alpha``, so
clean traffic flags nothing at that level however many channels there are. A signal is
**flagged** when its adjusted p-value is below ``alpha`` *and* its effect (the KS distance, or
the total-variation distance of the class shares) is at least ``drift.min_ks``. The PSI over the
reference's quantile bins is reported beside each KS test as the magnitude.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np
from scipy import stats

from sensorops.monitoring.config import DriftConfig
from sensorops.monitoring.reference import Reference


@dataclass(frozen=True)
class SignalResult:
    """One drift test."""

    signal: str
    kind: str  # mean | std | alignment_cost | confidence | predicted
    channel: str | None
    test: str
    statistic: float
    effect: float
    psi: float | None
    p_value: float
    p_adjusted: float
    flagged: bool
    n_window: int
    n_reference: int
    window_median: float | None = None
    reference_median: float | None = None

    def describe(self) -> str:
        where = f" of channel {self.channel!r}" if self.channel else ""
        med = ""
        if self.window_median is not None and self.reference_median is not None:
            med = f", median {self.window_median:.4g} vs {self.reference_median:.4g}"
        psi = f", PSI {self.psi:.3f}" if self.psi is not None else ""
        return (
            f"{self.kind}{where}: {self.test} {self.effect:.3f}{psi}{med}, "
            f"adjusted p {self.p_adjusted:.2g} (n={self.n_window} vs {self.n_reference})"
        )


def psi(reference: np.ndarray, window: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of ``window`` over the reference's quantile bins."""
    reference = reference[np.isfinite(reference)]
    window = window[np.isfinite(window)]
    if len(reference) < 2 or len(window) < 1:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    win = np.bincount(np.searchsorted(edges, window, side="right"), minlength=len(edges) + 1)
    p = np.clip(ref / ref.sum(), eps, None)
    q = np.clip(win / win.sum(), eps, None)
    return float(np.sum((q - p) * np.log(q / p)))


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    """Bonferroni or Benjamini-Hochberg adjusted p-values (capped at 1)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out


def _ks(ref: np.ndarray, win: np.ndarray) -> tuple[float, float]:
    ref, win = ref[np.isfinite(ref)], win[np.isfinite(win)]
    if len(ref) < 2 or len(win) < 2:
        return 0.0, 1.0
    res = stats.ks_2samp(win, ref, method="auto")
    return float(res.statistic), float(res.pvalue)


@dataclass
class _Raw:
    signal: str
    kind: str
    channel: str | None
    test: str
    statistic: float
    effect: float
    psi: float | None
    p: float
    n_window: int
    n_reference: int
    window_median: float | None
    reference_median: float | None


def _class_test(ref: Reference, predicted: list[str]) -> _Raw:
    classes = list(ref.classes)
    extra = sorted(set(predicted) - set(classes))
    classes += extra
    w = np.array([predicted.count(c) for c in classes], dtype=np.float64)
    held = ref.model_side_mask()
    ref_pred = [p for p, h in zip(ref.predicted, held, strict=True) if h]
    r = np.array([ref_pred.count(c) for c in classes], dtype=np.float64)
    keep = (w + r) > 0
    w, r = w[keep], r[keep]
    if len(w) < 2 or w.sum() == 0:
        stat, p = 0.0, 1.0
    else:
        stat, p, _, _ = stats.chi2_contingency(np.vstack([w, r]), correction=False)
    tv = 0.5 * float(np.abs(w / max(w.sum(), 1) - r / max(r.sum(), 1)).sum())
    return _Raw(
        "predicted",
        "predicted",
        None,
        "chi2/TV",
        float(stat),
        tv,
        None,
        float(p),
        int(w.sum()),
        int(r.sum()),
        None,
        None,
    )


def drift_tests(
    ref: Reference,
    mean: np.ndarray,
    std: np.ndarray,
    alignment_cost: np.ndarray,
    confidence: np.ndarray,
    predicted: list[str],
    config: DriftConfig,
) -> list[SignalResult]:
    """Every drift test of the window (``mean``/``std`` are ``(n, n_channels)``)."""
    raw: list[_Raw] = []
    series = []
    for kind, win_m, ref_m in (
        ("mean", mean, ref.matrix("input_mean")),
        ("std", std, ref.matrix("input_std")),
    ):
        for k, ch in enumerate(ref.channels):
            series.append((f"{kind}:{ch}", kind, ch, win_m[:, k], ref_m[:, k]))
    held = ref.model_side_mask()
    ref_cost, ref_conf = ref.matrix("alignment_cost")[held], ref.matrix("confidence")[held]
    series.append(("alignment_cost", "alignment_cost", None, alignment_cost, ref_cost))
    series.append(("confidence", "confidence", None, confidence, ref_conf))
    for signal, kind, ch, win, rf in series:
        d, p = _ks(rf, win)
        finite_w, finite_r = win[np.isfinite(win)], rf[np.isfinite(rf)]
        raw.append(
            _Raw(
                signal,
                kind,
                ch,
                "KS",
                d,
                d,
                psi(rf, win, config.psi_bins),
                p,
                len(finite_w),
                len(finite_r),
                float(np.median(finite_w)) if len(finite_w) else None,
                float(np.median(finite_r)) if len(finite_r) else None,
            )
        )
    raw.append(_class_test(ref, predicted))
    adjusted = adjust(np.array([r.p for r in raw]), config.correction)
    out = []
    for r, pa in zip(raw, adjusted, strict=True):
        flagged = bool(pa < config.alpha and r.effect >= config.min_ks)
        out.append(
            SignalResult(
                signal=r.signal,
                kind=r.kind,
                channel=r.channel,
                test=r.test,
                statistic=r.statistic,
                effect=r.effect,
                psi=r.psi,
                p_value=r.p,
                p_adjusted=float(pa),
                flagged=flagged,
                n_window=r.n_window,
                n_reference=r.n_reference,
                window_median=r.window_median,
                reference_median=r.reference_median,
            )
        )
    return out


def drift_over_time(
    ref: Reference, mean: np.ndarray, std: np.ndarray, buckets: int
) -> dict[str, list[float]]:
    """KS distance per channel (the larger of its ``mean`` and ``std`` tests) per time bucket."""
    n = len(mean)
    edges = np.linspace(0, n, min(buckets, max(n, 1)) + 1).astype(int)
    rm, rs = ref.matrix("input_mean"), ref.matrix("input_std")
    out: dict[str, list[float]] = {}
    for k, ch in enumerate(ref.channels):
        vals = []
        for a, b in pairwise(edges):
            if b - a < 2:
                vals.append(float("nan"))
                continue
            vals.append(max(_ks(rm[:, k], mean[a:b, k])[0], _ks(rs[:, k], std[a:b, k])[0]))
        out[ch] = vals
    return out


def as_dicts(results: list[SignalResult]) -> list[dict[str, object]]:
    return [asdict(r) for r in results]
