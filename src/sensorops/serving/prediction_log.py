"""The prediction log: one record per answered series, for monitoring and rollout analysis.

Contract (what the monitoring side may rely on):

- **Layout.** Hive-partitioned Parquet under ``<dir>/date=YYYY-MM-DD/version=V/part-*.parquet``
  (UTC date of the request), readable with ``pandas.read_parquet(dir)`` or
  ``pyarrow.dataset.dataset(dir, partitioning="hive")``.
- **Columns.** ``request_id`` (str; the id the service answered with), ``series_index`` (int,
  position in the request), ``time`` (UTC timestamp, request arrival), ``endpoint``, ``model``,
  ``version``, ``alias`` (the arm that answered), ``n_steps``, ``nans_filled``,
  ``points_repaired``, ``reference``, ``alignment_cost`` (input summary), ``input_mean`` and
  ``input_std`` (per channel, lists), ``predicted`` (class name), ``probabilities`` (list, in
  ``classes`` order), ``classes`` (list), ``latency_ms`` (arrival to answer), and, unless
  ``prediction_log.raw_input`` is off, ``input_values`` (the series as received after the request
  checks, before repair: a ``(time, channels)`` nested list in the model's channel order, NaN as
  null).
- **Atomic rolls.** A file is written to a temporary name, fsynced and renamed; a reader never
  sees a half-written file.
- **Bounded loss.** Records are buffered in memory and rolled after ``flush_records`` records or
  ``flush_s`` seconds, whichever comes first, and on shutdown. A killed replica loses at most the
  records of the last ``flush_s`` seconds (and never more than ``flush_records`` records).

Feedback (``POST /v1/feedback``) goes to the same kind of log under ``<dir>/../feedback`` with
columns ``request_id``, ``series_index``, ``label``, ``time``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from sensorops.atomic import atomic_path

logger = logging.getLogger(__name__)


class PartitionedLog:
    """Buffered, atomically rolled, date/version-partitioned Parquet log (thread-safe).

    Args:
        root: log directory.
        flush_records: roll after this many buffered records.
        flush_s: roll at least this often (a background thread checks every ``flush_s / 4``).
        partition_by: record keys that form the Hive partitions, in order (``date`` is derived
            from ``time``).
    """

    def __init__(
        self,
        root: str | Path,
        flush_records: int = 256,
        flush_s: float = 5.0,
        partition_by: tuple[str, ...] = ("date", "version"),
    ) -> None:
        self.root = Path(root)
        self.flush_records = int(flush_records)
        self.flush_s = float(flush_s)
        self.partition_by = partition_by
        self._buf: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self._buf.extend(records)
            full = len(self._buf) >= self.flush_records
        if full:
            self.flush()

    def flush(self) -> int:
        """Roll the buffered records into one file per partition; returns how many were written."""
        with self._lock:
            records, self._buf = self._buf, []
            self._last_flush = time.monotonic()
        if not records:
            return 0
        frame = pd.DataFrame.from_records(records)
        if "date" in self.partition_by:
            frame["date"] = pd.to_datetime(frame["time"], utc=True).dt.strftime("%Y-%m-%d")
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for key, part in frame.groupby(list(self.partition_by), sort=False):
            values = key if isinstance(key, tuple) else (key,)
            sub = self.root.joinpath(
                *(f"{col}={val}" for col, val in zip(self.partition_by, values, strict=True))
            )
            target = sub / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
            with atomic_path(target, suffix=".parquet") as tmp:
                part.drop(columns=list(self.partition_by)).to_parquet(tmp, index=False)
        return len(records)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s / 4):
            if time.monotonic() - self._last_flush >= self.flush_s:
                try:
                    self.flush()
                except Exception:  # keep logging alive; the next roll retries new records
                    logger.exception("prediction log roll failed")

    def close(self) -> None:
        self._stop.set()
        self.flush()
