"""The retraining set: the original training data plus the labelled, quality-passing log records.

- **Trigger.** :func:`check_trigger` reads the last monitoring report and refuses unless its
  decision is ``retrain`` (or ``force_retrain``); the error names the report and its decision.
- **Records.** A log record joins when it has a feedback label, its raw input
  (``input_values``) and passes the record checks (no stuck channel, NaN share and values within
  the data-quality thresholds). Its series id is ``log:<request_id>:<series_index>``.
- **Leak-free split.** The original series keep the split ingestion gives them (the same
  :func:`~sensorops.timeseries.assign_splits` call, so the same series land in test as in the
  original run). Log series are split **by request id** with a seeded hash, so every series of a
  request (and a request sent twice) lands in one split; test and validation never share a
  series with training.
- **Lineage.** :func:`lineage` records the window's digest, date range, file digests, counts
  and the digest of the combined table; the retraining pipeline writes it as version tags.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sensorops.monitoring.config import RetrainingConfig
from sensorops.monitoring.errors import RetrainingError
from sensorops.monitoring.log_reader import LogWindow, raw_series
from sensorops.monitoring.monitor import record_checks

LOG_PREFIX = "log:"


def check_trigger(report_path: str | Path, force: bool, require: bool = True) -> dict[str, Any]:
    """The last report's decision, or a :class:`RetrainingError` when it does not ask to retrain."""
    path = Path(report_path)
    if force:
        return {"decision": "forced", "report": str(path) if path.exists() else None}
    if not require:
        return {"decision": "not required", "report": None}
    if not path.exists():
        raise RetrainingError(
            f"no monitoring report at {path}: run `kedro run --pipeline=monitoring` first, or "
            "force with `--params monitoring.force_retrain=true`"
        )
    report = json.loads(path.read_text())
    decision = report.get("decision")
    if decision != "retrain":
        raise RetrainingError(
            f"the monitoring report {path} says {decision!r} (v{report.get('version')}, "
            f"{report.get('window', {}).get('n_records')} records), not 'retrain'; "
            "force with `--params monitoring.force_retrain=true`"
        )
    return {"decision": decision, "report": str(path), "reasons": report.get("reasons", [])}


def _bucket(request_id: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{request_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def log_training_rows(
    window: LogWindow,
    channels: list[str],
    config: RetrainingConfig,
    seed: int = 42,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Long-format rows of the labelled, quality-passing records, with their split.

    Returns ``(frame, counts)``; ``counts`` says how many records were labelled, lacked the raw
    input, failed the checks and joined.
    """
    recs = window.labelled
    counts = {"labelled": len(recs), "no_raw_input": 0, "failed_checks": 0, "joined": 0}
    if "input_values" not in recs.columns:
        counts["no_raw_input"] = len(recs)
        return pd.DataFrame(), counts
    has_raw = recs["input_values"].notna()
    counts["no_raw_input"] = int((~has_raw).sum())
    recs = recs[has_raw]
    if not len(recs):
        return pd.DataFrame(), counts
    checks = record_checks(
        recs, channels, config.min_channel_std, config.max_nan_share, config.value_range
    )
    counts["failed_checks"] = int((~checks["ok"]).sum())
    recs = recs[checks["ok"].to_numpy()]
    frames = []
    for (_, rec), values in zip(recs.iterrows(), raw_series(recs), strict=True):
        u = _bucket(str(rec["request_id"]), seed)
        split = (
            "test"
            if u < config.test_fraction
            else "val"
            if u < config.test_fraction + (1 - config.test_fraction) * config.val_fraction
            else "train"
        )
        frame = pd.DataFrame(values, columns=channels)
        frame.insert(0, "t", np.arange(len(values), dtype=np.int64))
        frame.insert(0, "series_id", f"{LOG_PREFIX}{rec['request_id']}:{int(rec['series_index'])}")
        frame["label"] = str(rec["label"])
        frame["split"] = split
        frames.append(frame)
    counts["joined"] = len(frames)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), counts


def combine(original: pd.DataFrame, log_rows: pd.DataFrame, split_config: Any) -> pd.DataFrame:
    """The original table (splits as ingestion assigns them) with the log rows appended."""
    from sensorops import timeseries as ts

    base = ts.assign_splits(original, split_config) if "split" not in original else original.copy()
    base["series_id"] = base["series_id"].astype(str)
    clash = set(base["series_id"]) & set(log_rows.get("series_id", pd.Series(dtype=str)))
    if clash:
        raise RetrainingError(f"log series ids collide with the original data: {sorted(clash)[:5]}")
    if not len(log_rows):
        return base
    cols = list(base.columns)
    missing = [c for c in cols if c not in log_rows.columns]
    if missing:
        raise RetrainingError(
            f"the log rows lack the original table's column(s) {missing} (channels differ?)"
        )
    return pd.concat([base, log_rows[cols]], ignore_index=True)


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 (first 16 hex) of a long table's values, column names and dtypes."""
    h = hashlib.sha256()
    h.update(",".join(f"{c}:{frame[c].dtype}" for c in frame.columns).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def lineage(
    window: LogWindow, counts: dict[str, int], combined: pd.DataFrame, trigger: dict[str, Any]
) -> dict[str, Any]:
    """The lineage record of a retraining set (JSON-ready)."""
    per_split = (
        combined.groupby("series_id")["split"].first().value_counts().to_dict()
        if len(combined)
        else {}
    )
    log_ids = combined.loc[combined["series_id"].str.startswith(LOG_PREFIX), "series_id"]
    log_split = (
        (combined[combined["series_id"].isin(log_ids)].groupby("series_id")["split"].first())
        .value_counts()
        .to_dict()
    )
    return {
        "window": window.lineage(),
        "records": counts,
        "trigger": trigger,
        "combined_digest": frame_digest(combined),
        "series_per_split": {str(k): int(v) for k, v in per_split.items()},
        "log_series_per_split": {str(k): int(v) for k, v in log_split.items()},
    }


def lineage_tags(record: dict[str, Any]) -> dict[str, str]:
    """Model-version tags of a retrained candidate (``retraining.*``)."""
    w = record["window"]
    files = ",".join(f"{f['path']}={f['sha256'][:12]}" for f in w["files"])
    return {
        "retraining.window.digest": w["digest"],
        "retraining.window.since": str(w["since"]),
        "retraining.window.until": str(w["until"]),
        "retraining.window.n_records": str(w["n_records"]),
        "retraining.window.n_labelled": str(w["n_labelled"]),
        "retraining.window.versions": ",".join(w["versions"]),
        "retraining.window.files": files[:4900],
        "retraining.log_records_joined": str(record["records"]["joined"]),
        "retraining.combined_digest": record["combined_digest"],
        "retraining.trigger": str(record["trigger"]["decision"]),
    }
