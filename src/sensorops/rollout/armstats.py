"""Per-arm numbers over a time window, from the service's arm log and the feedback log.

The arm log (``serving.rollout.log_dir``, written by every replica, see
:mod:`sensorops.serving.app`) has one record per answered series, or one per request that failed
before it was scored: ``request_id``, ``series_index``, ``time``, ``version``, ``arm``,
``shadow``, ``status``, ``latency_ms``, ``cpu_s`` (model CPU: preprocessing + inference),
``predicted``. Labels come from the feedback log (``POST /v1/feedback``; ``<prediction_log
dir>/../feedback``, the prediction-log contract), joined on ``(request_id, series_index)``.

A **request** counts once per arm (its first series carries status and latency); an **error** is
an answer with status >= 500 (a 503 shed included; 4xx are the caller's mistakes and are only
reported). Latency percentiles are over the arm's answered requests.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmStats:
    """One arm over one window.

    Attributes:
        arm: the alias that answered (``production``, ``canary``).
        versions: versions seen on this arm in the window.
        requests: requests routed to the arm (shadow copies for a shadow canary).
        errors: of those, answers with status >= 500.
        client_errors: answers with a 4xx status.
        p50_ms, p99_ms: latency percentiles of the answered (200) requests (``None``: none).
        cpu_ms_per_series: mean model CPU milliseconds per scored series.
        cpu_by_batch: ``{batch size: (series, mean CPU ms per series)}``. A batch's fixed cost is
            shared by its series, so an arm with 5 % of the traffic (small batches) pays more per
            series for the same model; the CPU check compares arms batch size by batch size.
        labelled: scored series whose true label has arrived.
        correct: of those, predicted right.
    """

    arm: str
    versions: tuple[str, ...]
    requests: int
    errors: int
    client_errors: int
    p50_ms: float | None
    p99_ms: float | None
    cpu_ms_per_series: float | None
    labelled: int
    correct: int
    cpu_by_batch: dict[int, tuple[int, float]] | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["versions"] = list(self.versions)
        out.pop("cpu_by_batch", None)
        out["error_rate"] = round(self.error_rate, 6)
        out["accuracy"] = None if self.accuracy is None else round(self.accuracy, 6)
        for k in ("p50_ms", "p99_ms", "cpu_ms_per_series"):
            if out[k] is not None:
                out[k] = round(out[k], 3)
        return out


def _read(root: Path, since: float) -> pd.DataFrame:
    """All parquet parts under ``root`` whose date partition can hold records at or after ``since``."""
    if not root.is_dir():
        return pd.DataFrame()
    day = pd.Timestamp(since, unit="s", tz="UTC").strftime("%Y-%m-%d")
    frames = []
    for part in sorted(root.glob("date=*/**/*.parquet")):
        d = next((p.name[5:] for p in part.parents if p.name.startswith("date=")), "")
        if d and d < day:
            continue
        try:
            frames.append(pd.read_parquet(part))
        except Exception as exc:  # a part being renamed in right now is complete or absent
            logger.warning("skipping unreadable log part %s: %s", part, exc)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _window(frame: pd.DataFrame, since: float, until: float) -> pd.DataFrame:
    if frame.empty:
        return frame
    t = pd.to_datetime(frame["time"], utc=True)
    lo = pd.Timestamp(since, unit="s", tz="UTC")
    hi = pd.Timestamp(until, unit="s", tz="UTC")
    return frame[(t >= lo) & (t < hi)]


def arm_stats(
    arm_log: str | Path,
    feedback_log: str | Path,
    since: float,
    until: float,
    model: str | None = None,
) -> dict[str, ArmStats]:
    """:class:`ArmStats` per arm for requests that arrived in ``[since, until)`` (UNIX seconds)."""
    frame = _window(_read(Path(arm_log), since), since, until)
    if model is not None and not frame.empty:
        frame = frame[frame["model"] == model]
    if frame.empty:
        return {}
    labels = _read(Path(feedback_log), since)
    if not labels.empty:
        labels = labels.drop_duplicates(["request_id", "series_index"], keep="last")
        labels = labels[["request_id", "series_index", "label"]]
        frame = frame.merge(labels, on=["request_id", "series_index"], how="left")
    else:
        frame = frame.assign(label=None)
    out = {}
    for arm, part in frame.groupby("arm", sort=True):
        first = part[part["series_index"] == 0]
        ok = first[first["status"] == 200]
        scored = part[part["predicted"].notna()]
        labelled = scored[scored["label"].notna()]
        cpu = scored["cpu_s"].dropna()
        by_batch: dict[int, tuple[int, float]] = {}
        if "batch_n" in scored.columns:
            timed = scored[scored["cpu_s"].notna() & scored["batch_n"].notna()]
            for n, grp in timed.groupby(timed["batch_n"].astype(int)):
                by_batch[int(n)] = (len(grp), float(grp["cpu_s"].mean() * 1000.0))
        lat = ok["latency_ms"].to_numpy(dtype=float)
        out[str(arm)] = ArmStats(
            arm=str(arm),
            versions=tuple(sorted({str(v) for v in part["version"]}, key=_num)),
            requests=len(first),
            errors=int((first["status"] >= 500).sum()),
            client_errors=int(((first["status"] >= 400) & (first["status"] < 500)).sum()),
            p50_ms=float(np.percentile(lat, 50)) if len(lat) else None,
            p99_ms=float(np.percentile(lat, 99)) if len(lat) else None,
            cpu_ms_per_series=float(cpu.mean() * 1000.0) if len(cpu) else None,
            labelled=len(labelled),
            correct=int((labelled["predicted"] == labelled["label"]).sum()),
            cpu_by_batch=by_batch,
        )
    return out


def _num(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (10**9, v)
