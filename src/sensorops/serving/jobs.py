"""Asynchronous batch scoring: ``POST /v1/jobs`` -> ``GET /v1/jobs/{id}`` -> a result Parquet.

A job scores a long-format Parquet file (``series_id``, ``t``, one column per channel) with the
version that was serving when the job was submitted. It runs as a Ray task: the series are cut
into blocks of ``batch_size`` whole series and scored by Ray Data ``map_batches`` over a
callable class holding one :class:`~sensorops.registry.pyfunc.SensorModel` (the same model and
code as the synchronous endpoint).

State lives on disk, not in the service: ``<jobs_dir>/<id>/job.json`` (written atomically at
every transition), so a restarted service answers ``GET /v1/jobs/{id}`` for old jobs and
resubmits the ones that were queued or running when it stopped. The result is written to
``<jobs_dir>/<id>/result.parquet`` atomically: one row per series with ``series_id``,
``predicted``, ``proba_<class>`` and ``error`` (null, or why that series could not be scored).
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sensorops.atomic import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
RESULT_FILE = "result.parquet"
OPEN_STATES = ("queued", "running")


class JobError(ValueError):
    """A job request is invalid (names the field), or the job id is unknown."""


@dataclass
class JobRecord:
    """The persisted state of one job."""

    id: str
    state: str
    input: str
    model: str
    version: str
    alias: str
    tracking_uri: str
    created_at: float
    updated_at: float
    attempts: int = 0
    n_series: int | None = None
    n_failed_series: int | None = None
    result: str | None = None
    error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("tracking_uri")
        return out


class JobStore:
    """Job records under ``root`` (one directory per job)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise JobError(f"job id {job_id!r} is not valid")
        return self.root / job_id

    def create(
        self, input_path: str, model: str, version: str, alias: str, tracking_uri: str
    ) -> JobRecord:
        now = time.time()
        rec = JobRecord(
            id=uuid.uuid4().hex,
            state="queued",
            input=input_path,
            model=model,
            version=version,
            alias=alias,
            tracking_uri=tracking_uri,
            created_at=now,
            updated_at=now,
            history=[{"state": "queued", "at": now}],
        )
        self.save(rec)
        return rec

    def save(self, rec: JobRecord) -> None:
        atomic_write_text(self.path(rec.id) / JOB_FILE, json.dumps(asdict(rec), indent=2))

    def get(self, job_id: str) -> JobRecord:
        path = self.path(job_id) / JOB_FILE
        if not path.is_file():
            raise JobError(f"no job with id {job_id!r}")
        return JobRecord(**json.loads(path.read_text()))

    def transition(self, job_id: str, state: str, **updates: Any) -> JobRecord:
        rec = self.get(job_id)
        now = time.time()
        rec.state = state
        rec.updated_at = now
        for k, v in updates.items():
            setattr(rec, k, v)
        rec.history.append({"state": state, "at": now})
        self.save(rec)
        return rec

    def claim_open(self) -> list[JobRecord]:
        """Jobs left queued/running by a stopped service, each claimed once (file lock).

        A claimed job gets ``attempts`` incremented and goes back to ``queued``; the caller
        resubmits it.
        """
        claimed = []
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for job_file in sorted(self.root.glob(f"*/{JOB_FILE}")):
                rec = JobRecord(**json.loads(job_file.read_text()))
                if rec.state in OPEN_STATES:
                    claimed.append(self.transition(rec.id, "queued", attempts=rec.attempts + 1))
        return claimed


def check_job_input(path: str, channels: tuple[str, ...]) -> Path:
    """Validate the job's input file before accepting the job.

    Raises:
        JobError: the file is missing or unreadable or lacks a column (names the field/column).
    """
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise JobError(f"input: file {path!r} does not exist on the service host")
    try:
        names = pq.read_schema(p).names
    except Exception as exc:
        raise JobError(f"input: {path!r} is not a readable Parquet file ({exc})") from exc
    missing = [c for c in ("series_id", *channels) if c not in names]
    if missing:
        raise JobError(
            f"input: {path!r} lacks column(s) {missing}; a job needs the long format series_id, "
            f"t and the channels {list(channels)}"
        )
    return p


class _BlockScorer:
    """Ray Data ``map_batches`` callable: one loaded model per worker, whole series per block."""

    def __init__(self, tracking_uri: str, name: str, version: str, alias: str) -> None:
        from sensorops.serving.model_source import load_version, resolve

        resolved = resolve(tracking_uri, name, alias, version=version)
        self.model = load_version(tracking_uri, resolved).model

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        from sensorops.contracts.preprocessing import InputError
        from sensorops.registry.pyfunc import long_frame_to_series

        state = self.model.state
        ids, values = long_frame_to_series(block, state.channels)
        classes = list(state.classes)
        rows: list[dict[str, Any]] = []
        ok_ids, ok_values = [], []
        for sid, v in zip(ids, values, strict=True):
            try:
                ok_values.append(state.check([v], field=f"series {sid!r}")[0])
                ok_ids.append(sid)
            except InputError as exc:
                rows.append(
                    {"series_id": sid, "predicted": None, "error": str(exc)}
                    | {f"proba_{c}": np.nan for c in classes}
                )
        if ok_values:
            X, _ = state.transform(ok_values)
            from sensorops.registry.pyfunc import softmax

            proba = softmax(self.model.logits(X))
            for sid, p in zip(ok_ids, proba, strict=True):
                rows.append(
                    {"series_id": sid, "predicted": classes[int(p.argmax())], "error": None}
                    | {f"proba_{c}": float(p[k]) for k, c in enumerate(classes)}
                )
        return pd.DataFrame(rows)


def run_job(jobs_dir: str, job_id: str, batch_size: int) -> str:
    """Run one job to completion (inside a Ray task); returns its final state."""
    import ray

    store = JobStore(jobs_dir)
    rec = store.transition(job_id, "running")
    try:
        frame = pd.read_parquet(rec.input)
        frame["series_id"] = frame["series_id"].astype(str)
        order = ["series_id", "t"] if "t" in frame.columns else ["series_id"]
        frame = frame.sort_values(order, kind="stable")
        ids = frame["series_id"].drop_duplicates().to_numpy()
        groups = [set(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]
        blocks = [frame[frame["series_id"].isin(g)].reset_index(drop=True) for g in groups]
        ds = ray.data.from_pandas(blocks)
        scored = ds.map_batches(
            _BlockScorer,
            fn_constructor_args=(rec.tracking_uri, rec.model, rec.version, rec.alias),
            batch_size=None,
            batch_format="pandas",
            concurrency=1,
        )
        parts = [scored_block for scored_block in scored.iter_batches(batch_format="pandas")]
        result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        target = store.path(job_id) / RESULT_FILE
        with atomic_path(target, suffix=".parquet") as tmp:
            result.to_parquet(tmp, index=False)
        n_failed = int(result["error"].notna().sum()) if len(result) else 0
        store.transition(
            job_id,
            "succeeded",
            n_series=len(result),
            n_failed_series=n_failed,
            result=str(target),
        )
        return "succeeded"
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        store.transition(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
        return "failed"
