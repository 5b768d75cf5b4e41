"""The MLflow run that holds the evidence (gate numbers) of a registration or transition.

Inside ``kedro run`` this is the run kedro-mlflow started (read from ``mlflow.active_run()``);
from the CLI a short run is created in ``experiment_name`` and closed when done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from sensorops.hygiene import close_dead_runs, process_tags
from sensorops.registry.client import Registry
from sensorops.registry.errors import GateRefused

logger = logging.getLogger(__name__)


def active_run_id(reg: Registry) -> str | None:
    """Id of the fluent active MLflow run if it lives on ``reg``'s tracking server, else None."""
    import mlflow

    run = mlflow.active_run()
    if run is None or mlflow.get_tracking_uri() != reg.uri:
        return None
    return run.info.run_id


class Evidence:
    """Logs gate numbers and tags into one run (``run_id``)."""

    def __init__(self, reg: Registry, run_id: str) -> None:
        self.reg = reg
        self.run_id = run_id

    def log(
        self, metrics: dict[str, float] | None = None, tags: dict[str, Any] | None = None
    ) -> None:
        """Log metrics (step 0) and tags (stringified, 8000 chars max) into the evidence run."""
        import time

        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.reg.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            tags=[RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()],
        )


def close_dead_runs_in(reg: Registry, experiment_name: str) -> list[str]:
    """Mark runs of ``experiment_name`` left RUNNING by dead processes of this host KILLED."""
    exp = reg.client.get_experiment_by_name(experiment_name)
    if exp is None:
        return []
    try:
        return close_dead_runs(reg.client, [exp.experiment_id])
    except Exception as exc:  # hygiene never blocks a registry command
        logger.warning("could not close runs of dead processes in %s: %s", experiment_name, exc)
        return []


@contextlib.contextmanager
def evidence_run(reg: Registry, experiment_name: str, run_name: str) -> Iterator[Evidence]:
    """Yield an :class:`Evidence` on the active run, or on a new run closed on exit."""
    existing = active_run_id(reg)
    if existing is not None:
        yield Evidence(reg, existing)
        return
    client = reg.client
    close_dead_runs_in(reg, experiment_name)
    exp = client.get_experiment_by_name(experiment_name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment_name)
    run = client.create_run(
        exp_id, run_name=run_name, tags={"sensorops.kind": "promotion-evidence", **process_tags()}
    )
    status = "FAILED"
    try:
        yield Evidence(reg, run.info.run_id)
        status = "FINISHED"
    except GateRefused:
        status = "FINISHED"  # a refusal is a valid outcome, recorded in the run's tags
        raise
    finally:
        client.set_terminated(run.info.run_id, status=status)
