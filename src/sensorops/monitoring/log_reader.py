"""Read and validate one window of the prediction log and join the feedback labels.

The layout is the contract of :mod:`sensorops.serving.prediction_log`:
``<log_dir>/date=YYYY-MM-DD/version=V/part-*.parquet`` and the feedback log
``<log_dir>/../feedback/date=YYYY-MM-DD/part-*.parquet`` (``request_id``, ``series_index``,
``label``, ``time``), joined on ``(request_id, series_index)``.

Every part file is opened on its own, so an error names the file: a truncated or foreign Parquet
file, a part whose columns are not the prediction log's (another model's or another tool's
schema), records of another model, a class list or channel count that changes between parts, a
duplicated ``(request_id, series_index)`` in the window, or a feedback label in the window's
scope (its request-id prefix, given at or after ``since``) for a request the log never answered. The reader only reads; a caller that fails here has written nothing.

The optional column ``input_values`` (per record the raw input as received, a ``(time,
channels)`` nested list, NaN as null) is kept when present; the live Great Expectations tiers and
the retraining set need it (see ``docs/monitoring.md``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sensorops.monitoring.config import WindowConfig
from sensorops.monitoring.errors import LogError

logger = logging.getLogger(__name__)

RAW_INPUT = "input_values"
"""The optional raw-input column (``(time, channels)`` nested list per record)."""

REQUIRED: dict[str, str] = {
    "request_id": "string",
    "series_index": "integer",
    "time": "timestamp",
    "model": "string",
    "alias": "string",
    "alignment_cost": "number",
    "input_mean": "list",
    "input_std": "list",
    "predicted": "string",
    "probabilities": "list",
    "classes": "list",
    "latency_ms": "number",
}
FEEDBACK: dict[str, str] = {
    "request_id": "string",
    "series_index": "integer",
    "label": "string",
    "time": "timestamp",
}
KEY = ["request_id", "series_index"]
_PART = re.compile(r"^part-.*\.parquet$")


def _kind(arrow_type: Any) -> str:
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "number"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _compatible(kind: str, wanted: str) -> bool:
    return kind == wanted or (wanted == "number" and kind == "integer") or kind == "null"


def list_parts(root: Path) -> list[Path]:
    """Every finished part file under ``root`` (temporary ``.part-*.tmp`` files are skipped)."""
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*.parquet") if _PART.match(p.name))


def _partitions(path: Path, root: Path) -> dict[str, str]:
    out = {}
    for part in path.relative_to(root).parts[:-1]:
        if "=" not in part:
            raise LogError(path, f"is not under a Hive partition folder (key=value); got {part!r}")
        k, v = part.split("=", 1)
        out[k] = v
    return out


def _read_part(path: Path, schema: dict[str, str], what: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for truncated or foreign files
        raise LogError(
            path, f"is not a readable Parquet file (truncated or not Parquet): {exc}"
        ) from None
    names = set(table.schema.names)
    missing = [c for c in schema if c not in names]
    if missing:
        raise LogError(
            path,
            f"is not a {what} part: missing column(s) {missing}; a {what} part has "
            f"{sorted(schema)} (found {sorted(names)})",
        )
    for col, wanted in schema.items():
        kind = _kind(table.schema.field(col).type)
        if not _compatible(kind, wanted):
            raise LogError(
                path, f"column {col!r} has type {table.schema.field(col).type}; expected {wanted}"
            )
    frame = table.to_pandas()
    if frame["time"].dt.tz is None:
        frame["time"] = frame["time"].dt.tz_localize("UTC")
    else:
        frame["time"] = frame["time"].dt.tz_convert("UTC")
    return frame


def _outside(day: str | None, since: pd.Timestamp | None, until: pd.Timestamp | None) -> bool:
    """True when the partition day ``YYYY-MM-DD`` cannot hold a record of ``[since, until)``."""
    if day is None:
        return False
    try:
        start = pd.Timestamp(day, tz="UTC")
    except ValueError:
        return False
    end = start + pd.Timedelta(days=1)
    return (since is not None and end <= since) or (until is not None and start >= until)


def _read_keys(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=KEY)
    except Exception as exc:
        raise LogError(
            path,
            f"is not a readable prediction-log part (truncated, not Parquet, or no keys): {exc}",
        ) from None
    return table.to_pandas()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class LogFile:
    """One part file that contributed records to the window."""

    path: str
    sha256: str
    n_records: int


@dataclass
class LogWindow:
    """The validated records of one window, feedback labels joined.

    Attributes:
        records: one row per record; ``label`` is the feedback label or None.
        files: the part files that contributed (path relative to the log dir, sha256, count).
        digest: sha256 over the sorted ``(path, sha256)`` of :attr:`files` and the record keys.
        log_dir: where the log is.
        classes: the model's classes (the ``classes`` column, identical in every record).
        n_channels: length of ``input_mean``.
    """

    records: pd.DataFrame
    files: list[LogFile] = field(default_factory=list)
    digest: str = ""
    log_dir: str = ""
    classes: tuple[str, ...] = ()
    n_channels: int = 0

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def labelled(self) -> pd.DataFrame:
        return self.records[self.records["label"].notna()]

    @property
    def has_raw_input(self) -> bool:
        return RAW_INPUT in self.records.columns and bool(self.records[RAW_INPUT].notna().all())

    def date_range(self) -> tuple[str | None, str | None]:
        if not self.n:
            return None, None
        t = self.records["time"]
        return t.min().isoformat(), t.max().isoformat()

    def versions(self) -> list[str]:
        return sorted(self.records["version"].astype(str).unique().tolist())

    def lineage(self) -> dict[str, Any]:
        """What a retrained version records about the window it learned from."""
        start, end = self.date_range()
        return {
            "log_dir": self.log_dir,
            "digest": self.digest,
            "since": start,
            "until": end,
            "n_records": self.n,
            "n_labelled": int(self.records["label"].notna().sum()),
            "versions": self.versions(),
            "files": [f.__dict__ for f in self.files],
        }


def _utc(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def read_window(
    log_dir: str | Path,
    window: WindowConfig | None = None,
    *,
    feedback_dir: str | Path | None = None,
    model: str | None = None,
) -> LogWindow:
    """Read, validate and select one window of the prediction log, feedback labels joined.

    Args:
        log_dir: the prediction log directory.
        window: since/until/last N/request-id prefix (default: everything).
        feedback_dir: the feedback log (default ``<log_dir>/../feedback``).
        model: the registered model name every record must carry (None: any single one).

    Raises:
        LogError: names the file and what is wrong with it (see the module docstring).
    """
    window = window or WindowConfig()
    root = Path(log_dir)
    fb_root = Path(feedback_dir) if feedback_dir is not None else root.parent / "feedback"
    parts = list_parts(root)
    if not parts:
        raise LogError(root, "holds no prediction-log part files (date=*/version=*/part-*.parquet)")
    since, until = _utc(window.since), _utc(window.until)
    frames: list[pd.DataFrame] = []
    all_keys: list[pd.DataFrame] = []
    shas: dict[str, str] = {}
    classes: tuple[str, ...] | None = None
    n_channels: int | None = None
    first: dict[str, Path] = {}
    seen_model: str | None = None
    for path in parts:
        parts_kv = _partitions(path, root)
        rel = str(path.relative_to(root))
        if _outside(parts_kv.get("date"), since, until):
            # a day outside the window: only its keys (the feedback join), still a readable file
            all_keys.append(_read_keys(path).assign(_file=rel))
            continue
        frame = _read_part(path, REQUIRED, "prediction-log")
        if not len(frame):
            continue
        if "version" not in frame.columns:  # the partition key, dropped from the file
            if "version" not in parts_kv:
                raise LogError(path, "has no version column and is not under a version=V folder")
            frame["version"] = parts_kv["version"]
        frame["version"] = frame["version"].astype(str)
        names = frame["model"].astype(str).unique().tolist()
        expected_model = model or seen_model or names[0]
        seen_model = expected_model
        foreign = [m for m in names if m != expected_model]
        if foreign:
            raise LogError(
                path,
                f"holds records of model(s) {foreign}; this window is of {expected_model!r} "
                f"(first seen in {first.get('model', path)})",
            )
        first.setdefault("model", path)
        if "version" in parts_kv and set(frame["version"].astype(str)) != {parts_kv["version"]}:
            raise LogError(
                path,
                f"records of version(s) {sorted(set(frame['version'].astype(str)))} in the "
                f"partition version={parts_kv['version']}",
            )
        for cl in frame["classes"]:
            cl = tuple(str(c) for c in cl)
            if classes is None:
                classes, first["classes"] = cl, path
            elif cl != classes:
                raise LogError(
                    path,
                    f"records with classes {list(cl)}; {first['classes']} has {list(classes)} "
                    "(another model's schema in one log)",
                )
        widths = {len(v) for v in frame["input_mean"]} | {len(v) for v in frame["input_std"]}
        widths_p = {len(v) for v in frame["probabilities"]}
        if widths_p != {len(classes or ())}:
            raise LogError(
                path, f"probabilities of length {sorted(widths_p)}; expected {len(classes or ())}"
            )
        if len(widths) != 1 or (n_channels is not None and widths != {n_channels}):
            raise LogError(
                path,
                f"input_mean/input_std of length {sorted(widths)}; expected one channel count"
                + (f" ({n_channels}, as in {first['channels']})" if n_channels else ""),
            )
        if n_channels is None:
            n_channels, first["channels"] = widths.pop(), path
        frame["_file"] = rel
        all_keys.append(frame[[*KEY, "_file"]])
        keep = pd.Series(True, index=frame.index)
        if since is not None:
            keep &= frame["time"] >= since
        if until is not None:
            keep &= frame["time"] < until
        if window.request_id_prefix:
            keep &= frame["request_id"].astype(str).str.startswith(window.request_id_prefix)
        if keep.any():
            frames.append(frame[keep])
            shas[rel] = _sha256(path)
    keys = pd.concat(all_keys, ignore_index=True) if all_keys else pd.DataFrame(columns=KEY)
    chosen = (
        pd.concat([f[[*KEY, "_file"]] for f in frames], ignore_index=True) if frames else keys[:0]
    )
    dup = chosen[chosen.duplicated(KEY, keep=False)]
    if len(dup):
        row = dup.iloc[0]
        files = sorted(set(dup[(dup.request_id == row.request_id)]["_file"]))
        raise LogError(
            root / files[-1],
            f"record (request_id={row.request_id!r}, series_index={int(row.series_index)}) is "
            f"logged more than once (files {files}); request ids must be unique",
        )
    if frames:
        records = pd.concat(frames, ignore_index=True).sort_values(["time", *KEY], kind="stable")
    else:
        records = pd.DataFrame(columns=[*REQUIRED, "_file"])
    if window.last_n is not None and len(records) > window.last_n:
        records = records.iloc[-window.last_n :]
    records = records.reset_index(drop=True)
    labels = _read_feedback(fb_root, keys, window.request_id_prefix, since)
    if len(records):
        records = records.merge(labels, on=KEY, how="left")
    else:
        records["label"] = pd.Series(dtype=object)
    records["label"] = records["label"].astype(object).where(records["label"].notna(), None)
    used = sorted(set(records["_file"]))
    counts = records["_file"].value_counts().to_dict()
    files = [LogFile(path=f, sha256=shas[f], n_records=int(counts[f])) for f in used]
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.path}:{f.sha256}\n".encode())
    for rid, idx in records[KEY].itertuples(index=False):
        h.update(f"{rid}#{idx}\n".encode())
    return LogWindow(
        records=records.drop(columns=["_file"]),
        files=files,
        digest=h.hexdigest(),
        log_dir=str(root),
        classes=classes or (),
        n_channels=int(n_channels or 0),
    )


def _read_feedback(
    root: Path, keys: pd.DataFrame, prefix: str | None, since: pd.Timestamp | None
) -> pd.DataFrame:
    """The latest label per key; a label for a key the log never answered is an error.

    Only the feedback in the window's scope is read: its request-id prefix, and labels given at
    or after ``since`` (a label always follows its prediction).
    """
    known = set(zip(keys["request_id"].astype(str), keys["series_index"].astype(int), strict=True))
    frames = []
    for path in list_parts(root):
        _partitions(path, root)
        frame = _read_part(path, FEEDBACK, "feedback")
        if prefix:
            frame = frame[frame["request_id"].astype(str).str.startswith(prefix)]
        if since is not None:
            frame = frame[frame["time"] >= since]
        for rid, idx in zip(frame["request_id"].astype(str), frame["series_index"], strict=True):
            if (rid, int(idx)) not in known:
                raise LogError(
                    path,
                    f"label for an unknown request (request_id={rid!r}, series_index={int(idx)}): "
                    "the prediction log never answered it",
                )
        frames.append(frame[[*KEY, "label", "time"]])
    if not frames:
        return pd.DataFrame({"request_id": [], "series_index": [], "label": []}).astype(
            {"request_id": object, "series_index": np.int64, "label": object}
        )
    fb = pd.concat(frames, ignore_index=True).sort_values("time", kind="stable")
    fb = fb.drop_duplicates(KEY, keep="last")
    fb["series_index"] = fb["series_index"].astype(np.int64)
    return fb[[*KEY, "label"]]


def channel_matrix(records: pd.DataFrame, column: str) -> np.ndarray:
    """``(n_records, n_channels)`` float array of a per-channel list column."""
    if not len(records):
        return np.empty((0, 0))
    return np.asarray([np.asarray(v, dtype=np.float64) for v in records[column]])


def raw_series(records: pd.DataFrame) -> list[np.ndarray]:
    """The logged raw inputs as ``(time, channels)`` float arrays (requires ``input_values``)."""
    out = []
    for v in records[RAW_INPUT]:
        rows = [
            np.asarray([np.nan if x is None else x for x in row], dtype=np.float64) for row in v
        ]
        out.append(np.vstack(rows))
    return out


def now_utc() -> datetime:
    return datetime.now(UTC)
