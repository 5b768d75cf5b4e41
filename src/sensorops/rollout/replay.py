"""A bounded replay load generator: send labelled series to the service, post labels back later.

``sensorops rollout replay URL --input TABLE`` reads a long-format table (``series_id``, ``t``,
one column per channel, ``label``; default the test split of
``data/02_intermediate/sensor_long.parquet``) and sends its series, cycled, to
``URL/v1/predict`` at ``rate`` requests per second (open loop, ``concurrency`` senders). Each
request carries its own ``X-Request-Key`` (so sticky routing spreads the keys over the arms) and
``X-Request-Id``; ``feedback_delay_s`` after an answer the true label is posted to
``URL/v1/feedback``. It stops after ``max_requests`` or ``max_seconds``, whichever comes first,
then waits at most ``feedback_delay_s + 10`` s for the pending labels. Only ``URL`` is contacted.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

META = ("series_id", "t", "label", "split")


class ReplayError(ValueError):
    """The replay input or its bounds are invalid (names the column or option)."""


@dataclass
class ReplayReport:
    """What a replay did: requests sent, answers per status and arm, labels posted."""

    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    arms: dict[str, int] = field(default_factory=dict)
    feedback_posted: int = 0
    feedback_failed: int = 0
    seconds: float = 0.0
    transport_errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_series(path: str | Path, split: str | None = "test") -> tuple[list[np.ndarray], list[str]]:
    """``(channels, time)`` arrays and their labels from a long-format Parquet or CSV table."""
    from sensorops.registry.pyfunc import long_frame_to_series

    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"--input {path} does not exist")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "label" not in frame.columns:
        raise ReplayError(f"--input {path} has no 'label' column (needed for the feedback)")
    if split and "split" in frame.columns:
        frame = frame[frame["split"] == split]
        if frame.empty:
            raise ReplayError(f"--input {path} has no rows with split == {split!r}")
    channels = [c for c in frame.columns if c not in META]
    ids, values = long_frame_to_series(frame, channels)
    labels = frame.groupby(frame["series_id"].astype(str))["label"].first()
    return [v.T for v in values], [str(labels[i]) for i in ids]


def _post(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **headers},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return (
                resp.status,
                {k.lower(): v for k, v in resp.headers.items()},
                json.loads(resp.read()),
            )
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            data = json.loads(payload)
        except ValueError:
            data = payload.decode(errors="replace")
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, data


def replay(
    url: str,
    series: list[np.ndarray],
    labels: list[str],
    rate: float = 20.0,
    max_requests: int = 1000,
    max_seconds: float = 60.0,
    feedback_delay_s: float = 1.0,
    concurrency: int = 8,
    headers: dict[str, str] | None = None,
    key_prefix: str | None = None,
    timeout_s: float = 30.0,
    stop: threading.Event | None = None,
) -> ReplayReport:
    """Send up to ``max_requests`` series at ``rate``/s for at most ``max_seconds``; see the module."""
    if not series or len(series) != len(labels):
        raise ReplayError("replay needs at least one series, each with its label")
    if rate <= 0 or max_requests < 1 or max_seconds <= 0 or concurrency < 1:
        raise ReplayError("rate, max_requests, max_seconds and concurrency must be positive")
    url = url.rstrip("/")
    prefix = key_prefix or uuid.uuid4().hex[:8]
    report = ReplayReport()
    statuses: Counter[str] = Counter()
    arms: Counter[str] = Counter()
    lock = threading.Lock()
    pending: list[tuple[float, str, str]] = []  # (due, request id, label)
    sending_done = threading.Event()
    stop = stop or threading.Event()
    bodies = [{"data": s.tolist()} for s in series]

    def one(i: int) -> None:
        rid = f"{prefix}-{i}"
        k = i % len(bodies)
        try:
            status, hdrs, _ = _post(f"{url}/v1/predict", bodies[k],
                                    {"X-Request-Id": rid, "X-Request-Key": rid, **(headers or {})},
                                    timeout_s)  # fmt: skip
        except OSError:
            with lock:
                report.transport_errors += 1
            return
        with lock:
            statuses[str(status)] += 1
            arms[hdrs.get("x-model-arm", "?")] += 1
            if status == 200:
                heapq.heappush(pending, (time.monotonic() + feedback_delay_s, rid, labels[k]))

    def feedback() -> None:
        while True:
            with lock:
                ready = bool(pending) and pending[0][0] <= time.monotonic()
                item = heapq.heappop(pending) if ready else None
                empty = not pending
            if item is None:
                if sending_done.is_set() and empty:
                    return
                time.sleep(0.05)
                continue
            _, rid, label = item
            try:
                status, _, _ = _post(f"{url}/v1/feedback", {"request_id": rid, "label": label},
                                     {}, timeout_s)  # fmt: skip
                ok = status == 202
            except OSError:
                ok = False
            with lock:
                if ok:
                    report.feedback_posted += 1
                else:
                    report.feedback_failed += 1

    start = time.monotonic()
    fb = threading.Thread(target=feedback, name="replay-feedback", daemon=True)
    fb.start()
    with concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="replay") as pool:
        futures = []
        i = 0
        while i < max_requests and not stop.is_set():
            due = start + i / rate
            now = time.monotonic()
            if now - start >= max_seconds:
                break
            if due > now:
                time.sleep(min(due - now, 0.05))
                continue
            futures.append(pool.submit(one, i))
            i += 1
        for f in futures:
            f.result()
    report.sent = i
    sending_done.set()
    fb.join(timeout=feedback_delay_s + 10.0)
    report.statuses = dict(statuses)
    report.arms = dict(arms)
    report.seconds = round(time.monotonic() - start, 3)
    return report
