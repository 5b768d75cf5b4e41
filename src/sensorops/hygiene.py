"""Start-of-run hygiene: close MLflow runs of dead processes, remove stale temp files.

Every run sensorops opens is tagged with the process that owns it (:data:`PROCESS_TAGS`:
``sensorops.pid``, ``sensorops.host``, ``sensorops.pid_start``). At the start of the next run
(:func:`start_of_run`, called once the project's run lock is held):

- :func:`close_dead_runs` marks every ``RUNNING`` run whose process is gone from this host
  ``KILLED``, with a ``sensorops.killed_note`` tag saying who noticed and when; their
  ``RUNNING`` child runs (``mlflow.parentRunId``) go with them. Runs of other hosts are left alone
  (their PIDs mean nothing here).
- :func:`remove_stale_tmp` deletes the ``.<name>.*.tmp`` files that :mod:`sensorops.atomic`
  leaves behind when a writer is killed between writing and renaming. Under the run lock no
  other run of this folder can be writing, so every such file under ``data/`` is stale.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from sensorops.runlock import is_alive, process_identity

logger = logging.getLogger(__name__)

PID_TAG, HOST_TAG, START_TAG = "sensorops.pid", "sensorops.host", "sensorops.pid_start"
NOTE_TAG = "sensorops.killed_note"


def process_tags(pid: int | None = None) -> dict[str, str]:
    """The tags naming the process that owns a run."""
    ident = process_identity(pid)
    return {
        PID_TAG: str(ident["pid"]),
        HOST_TAG: ident["host"],
        START_TAG: str(ident["start_ticks"]),
    }


PROCESS_TAGS = (PID_TAG, HOST_TAG, START_TAG)


def close_dead_runs(client: Any, experiment_ids: list[str] | None = None) -> list[str]:
    """Mark ``RUNNING`` runs of dead processes on this host ``KILLED``; return their ids.

    Args:
        client: an ``mlflow.MlflowClient``.
        experiment_ids: experiments to scan (default: all active ones).
    """
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not experiment_ids:
        return []
    host = socket.gethostname()
    running = client.search_runs(
        experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    me = f"PID {os.getpid()} on {host}"
    killed: list[str] = []
    for run in running:
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or PID_TAG not in tags:
            continue
        if is_alive(tags[PID_TAG], host, tags.get(START_TAG) or None) is not False:
            continue
        note = f"process {tags[PID_TAG]} on {host} died without closing this run; marked KILLED at {now} by {me}"
        client.set_tag(run.info.run_id, NOTE_TAG, note)
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_id)
        logger.warning("MLflow run %s (%s): %s", run.info.run_id, run.info.run_name, note)
    if killed:
        for run in running:
            parent = run.data.tags.get("mlflow.parentRunId")
            if parent in killed and run.info.run_id not in killed:
                client.set_tag(
                    run.info.run_id,
                    NOTE_TAG,
                    f"parent run {parent} was killed; marked KILLED at {now}",
                )
                client.set_terminated(run.info.run_id, status="KILLED")
                killed.append(run.info.run_id)
    return killed


def remove_stale_tmp(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the atomic-write leftovers ``.<name>.<random>.tmp`` under ``root``; return them."""
    removed = []
    for path in Path(root).rglob(".*.tmp"):
        if path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    if removed:
        logger.warning(
            "removed %d stale temporary file(s) of killed writers: %s",
            len(removed),
            ", ".join(str(p) for p in removed[:10]) + (" ..." if len(removed) > 10 else ""),
        )
    return removed


def start_of_run(data_dir: str | os.PathLike[str], tracking_uri: str | None) -> dict[str, Any]:
    """Both checks; a tracking server that cannot be asked only costs a warning."""
    removed = remove_stale_tmp(data_dir)
    killed: list[str] = []
    if tracking_uri:
        try:
            from mlflow import MlflowClient

            killed = close_dead_runs(MlflowClient(tracking_uri=tracking_uri))
        except Exception as exc:  # hygiene must never stop a run
            logger.warning("could not check %s for runs of dead processes: %s", tracking_uri, exc)
    return {"removed_tmp": [str(p) for p in removed], "killed_runs": killed}
