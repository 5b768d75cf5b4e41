"""Project hooks on top of kedro-mlflow (which validates ``mlflow.yml``, opens the run, logs params).

- :class:`ProjectConfigHooks` (first): unknown parameter keys, an unreachable tracking server,
  a missing upstream input and another live run in this folder are errors before any node runs.
- :class:`NodeTrackingHooks`: per node its duration, status and dataset sizes; a failing node
  tags the run; run tags; at the end the time per pipeline and where every report dataset is
  (catalog ``metadata.sensorops``, see :mod:`sensorops.run_summary`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

from sensorops import run_summary
from sensorops.config_validation import check_parameters, resolve_project_paths
from sensorops.console import FAILED_NODE, root_cause
from sensorops.hygiene import start_of_run
from sensorops.runlock import RunLock, release_project_lock
from sensorops.tracking import (
    apply_credentials,
    check_tracking_uri,
    default_tracking_uri,
    looks_unreachable,
    mask_secrets,
    mask_uri,
    stop_retrying,
)

logger = logging.getLogger(__name__)


def mlflow_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


class MissingUpstreamOutputError(RuntimeError):
    """A pipeline's input does not exist yet; another pipeline produces it."""


class ProjectConfigHooks:
    """Validate the parameters and reach the tracking server before any node runs."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        loader, root = context.config_loader, Path(context.project_path).resolve()
        loader["parameters"] = resolve_project_paths(loader["parameters"], root)  # no chdir
        check_parameters(context.params, Path(loader.conf_source) / "base", context.env)
        loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
        try:  # only the URI is read here; kedro-mlflow validates the file right after
            conf_mlflow = loader["mlflow"] or {}
            server = conf_mlflow.get("server") or {}
        except Exception:  # a missing or broken mlflow.yml: kedro-mlflow reports it
            conf_mlflow, server = None, {}
        configured = server.get("mlflow_tracking_uri") or default_tracking_uri()
        # a login in the URI moves to MLFLOW_TRACKING_USERNAME/_PASSWORD; kedro-mlflow, MLflow
        # and the training workers see the URI without it
        self._uri = apply_credentials(configured, root)
        if conf_mlflow is not None and self._uri != configured:
            loader["mlflow"] = {
                **conf_mlflow,
                "server": {**server, "mlflow_tracking_uri": self._uri},
            }
        check_tracking_uri(self._uri)  # also a wrong login: refused before any node runs
        self._data_dir = root / "data"

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from kedro.framework.project import pipelines  # stop before kedro-mlflow opens a run

        lines = run_summary.missing_inputs(pipeline, catalog, pipelines)
        if lines:
            raise MissingUpstreamOutputError(
                f"cannot run {','.join(run_summary.requested_pipelines(run_params))}: "
                "its input(s) are missing:\n" + "\n".join(lines)
            )
        # one run per project folder (sensorops.runlock), then clean up after killed runs
        RunLock(self._data_dir, run_summary.requested_pipelines(run_params)).acquire()
        start_of_run(self._data_dir, self._uri)


class NodeTrackingHooks:
    """Log per-node duration, status and data sizes into the ``kedro run``'s MLflow run."""

    def __init__(self) -> None:
        self._run_id: str | None = None
        self._started: dict[str, float] = {}
        self._seconds: dict[str, float] = defaultdict(float)
        self._pipelines: set[str] = set()
        self._project_path = Path.cwd()
        self._io: tuple[Node, str] | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        import mlflow

        self._seconds.clear()
        self._io = None
        FAILED_NODE.clear()  # one process may run several sessions (notebooks, tests)
        self._pipelines = run_summary.registered_pipelines()
        run = mlflow.active_run()
        self._run_id = run.info.run_id if run is not None else None
        if run is not None:
            mlflow.set_tags(run_summary.run_tags(run_params, self._project_path))

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Node, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        metrics, tags = run_summary.data_sizes(node.name, inputs, outputs)
        self._log({f"node.{node.name}.status": 1.0, **self._stop(node), **metrics}, tags)

    @hook_impl
    def on_node_error(self, error: Exception, node: Node) -> None:
        self._fail(error, node)

    def _fail(self, error: Exception, node: Node, original: Exception | None = None) -> None:
        """Tag the run with the failed node and the real cause (``original``: a load/save's)."""
        FAILED_NODE["name"] = node.name
        shown = original if original is not None else error
        cause = root_cause(shown)  # e.g. the NotADirectoryError under Kedro's DatasetError
        message = f"{type(shown).__name__}: {shown}"
        if original is not None:
            message = f"{error}: {message}"
        if cause is not shown:
            message += f" (cause: {type(cause).__name__}: {cause})"
        failure = {
            "sensorops.failed_node": node.name,
            "sensorops.error": mask_secrets(message)[:4900],
        }
        if looks_unreachable(shown):
            stop_retrying()  # one quick try for the tags and for closing the run, no more waiting
        try:
            self._log({f"node.{node.name}.status": 0.0, **self._stop(node)}, failure)
        except Exception as exc:  # the server is gone: the node's own error is what matters
            if not looks_unreachable(exc):
                raise
            stop_retrying()
            logger.warning(
                "could not tag the MLflow run with the failure of node %s: %s unreachable",
                node.name,
                mask_uri(str(mlflow_uri())),
            )

    @hook_impl
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        self._report_timings()
        lines = run_summary.run_lines(self._run_id) + run_summary.report_lines(pipeline, catalog)
        if lines:
            lines.append(f"{'lineage':<16} make viz -> http://127.0.0.1:4141")
            logger.info("where the results are:\n  %s", "\n  ".join(lines))
        release_project_lock(self._project_path / "data")

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Node) -> None:
        self._io = (node, f"loading {dataset_name}")

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, node: Node) -> None:
        self._io = (node, f"saving {dataset_name}")

    @hook_impl
    def after_dataset_loaded(self) -> None:
        self._io = None

    @hook_impl
    def after_dataset_saved(self) -> None:
        self._io = None

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        # Kedro calls on_node_error only for the node function: a failed load or save of a
        # node's dataset gets its failure tags here (the node and the real cause, named)
        if self._io is not None and "name" not in FAILED_NODE:
            node, what = self._io
            self._io = None
            self._started.setdefault(node.name, time.perf_counter())
            self._fail(RuntimeError(f"{what} failed"), node, error)
        self._report_timings()
        release_project_lock(self._project_path / "data")

    def _stop(self, node: Node) -> dict[str, float]:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        pipeline = next((t for t in sorted(node.tags) if t in self._pipelines), "other")
        self._seconds[pipeline] += seconds
        return {f"node.{node.name}.duration_s": seconds}

    def _log(self, metrics: dict[str, float], tags: dict[str, str]) -> None:
        if self._run_id is None:
            return
        import mlflow
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(
            self._run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
            synchronous=True,
        )

    def _report_timings(self) -> None:
        if self._seconds:
            logger.info("time per pipeline:\n%s", run_summary.timing_lines(self._seconds))
            self._seconds.clear()
