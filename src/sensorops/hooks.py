"""Project hooks: early config checks, and per-node tracking into the run's MLflow run.

kedro-mlflow (auto-registered plugin) opens one MLflow run per ``kedro run`` and logs the
parameters. These hooks add:

- :class:`ProjectConfigHooks` (runs first, before kedro-mlflow touches the store): unknown keys in
  ``mlflow.yml`` or in the parameters, and an unreachable tracking server, are errors before any
  node runs.
- :class:`NodeTrackingHooks`: for every node its duration, status and, for each input/output
  dataset, the row/element count and shape; a failing node tags the run with its name and error
  (kedro-mlflow then marks the run FAILED); run tags with the kedro run id, pipelines, env, git
  commit and package version; a timing table per pipeline at the end.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

import sensorops
from sensorops.config_validation import check_parameters
from sensorops.data_stats import describe_data
from sensorops.hygiene import process_tags, start_of_run
from sensorops.runlock import RunLock, release_project_lock
from sensorops.tracking import check_tracking_uri, default_tracking_uri, git_commit

logger = logging.getLogger(__name__)

PIPELINE_TAGS = ("ingestion", "data_quality", "training", "compression", "export", "promotion")


class MlflowConfigError(ValueError):
    """``mlflow.yml`` has an unknown key or an invalid value."""


class MissingUpstreamOutputError(RuntimeError):
    """A pipeline's input does not exist yet; another pipeline produces it."""


class ProjectConfigHooks:
    """Validate configuration before any node runs."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        project = Path(context.project_path).resolve()
        if Path.cwd().resolve() != project:
            # Relative paths in parameters (ONNX outputs, Data Docs, GE project) mean "in the project",
            # as catalog paths already do, also when kedro is started from a sub-folder.
            logger.info("working directory changed to the project root %s", project)
            os.chdir(project)
        conf_source = Path(context.config_loader.conf_source)
        env = context.env
        check_parameters(context.params, conf_source / "base", env)

        from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
        from pydantic import ValidationError

        loader = context.config_loader
        if "mlflow" not in loader.config_patterns:
            loader.config_patterns.update({"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]})
        try:
            raw = loader["mlflow"]
        except Exception as exc:  # MissingConfigException, YAML errors
            raise MlflowConfigError(f"cannot read mlflow.yml in {conf_source}: {exc}") from exc
        try:
            config = KedroMlflowConfig.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"'{'.'.join(str(p) for p in err['loc'])}': {err['msg']}" for err in exc.errors()
            )
            raise MlflowConfigError(
                f"{conf_source}/{{base,{env or 'local'}}}/mlflow.yml is invalid: {problems}. "
                "See the kedro-mlflow configuration reference in README.md."
            ) from exc
        uri = config.server.mlflow_tracking_uri or default_tracking_uri()
        check_tracking_uri(uri)
        self._data_dir, self._uri = project / "data", uri

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Stop before kedro-mlflow opens a run when a free input of ``pipeline`` is missing on disk."""
        from kedro.framework.project import pipelines as registered

        missing = []
        for name in sorted(pipeline.inputs()):
            if name.startswith("params:") or name == "parameters" or name not in catalog:
                continue
            if not catalog.exists(name):
                missing.append(name)
        if not missing:  # one run per project folder, then clean up after killed runs
            names = run_params.get("pipeline_names") or run_params.get("pipeline_name")
            RunLock(self._data_dir, [str(names or "__default__")]).acquire()
            start_of_run(self._data_dir, self._uri)
            return
        lines = []
        for name in missing:
            producers = [
                p for p, pl in registered.items() if p != "__default__" and name in pl.all_outputs()
            ]
            where = _describe_dataset(catalog, name)
            how = (
                " or ".join(f"`kedro run --pipelines={p}`" for p in producers)
                if producers
                else "(no registered pipeline produces it; provide the file)"
            )
            lines.append(f"  - {name}{where} does not exist yet; produce it with {how}")
        requested = run_params.get("pipeline_names") or [
            run_params.get("pipeline_name") or "__default__"
        ]
        raise MissingUpstreamOutputError(
            f"cannot run {','.join(requested)}: its input(s) are missing:\n" + "\n".join(lines)
        )


class NodeTrackingHooks:
    """Log per-node duration, status and data sizes into the ``kedro run``'s MLflow run."""

    def __init__(self) -> None:
        self._run_id: str | None = None
        self._client: Any = None
        self._started: dict[str, float] = {}
        self._timings: list[tuple[str, str, float, str]] = []
        self._project_path: Path | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        import mlflow

        self._timings = []
        run = mlflow.active_run()
        if run is None:
            self._run_id, self._client = None, None
            logger.info(
                "no active MLflow run (tracking disabled for this pipeline); node metrics not logged"
            )
            return
        self._run_id = run.info.run_id
        self._client = mlflow.MlflowClient()
        names = run_params.get("pipeline_names") or [
            run_params.get("pipeline_name") or "__default__"
        ]
        if isinstance(names, str):
            names = [names]
        tags = {
            "sensorops.kedro_run_id": str(
                run_params.get("run_id") or run_params.get("session_id") or ""
            ),
            "sensorops.pipelines": ",".join(names),
            "sensorops.env": str(run_params.get("env") or "local"),
            "sensorops.version": sensorops.__version__,
            **process_tags(),  # lets the next run close this one if the process is killed
        }
        commit, dirty = git_commit(self._project_path or Path.cwd())
        if commit:
            tags.update({"sensorops.git_commit": commit, "mlflow.source.git.commit": commit})
            tags["sensorops.git_dirty"] = str(dirty).lower()
        mlflow.set_tags(tags)

    @hook_impl
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Node, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self._timings.append((_pipeline_of(node), node.name, seconds, "ok"))
        metrics = {f"node.{node.name}.duration_s": seconds, f"node.{node.name}.status": 1.0}
        tags: dict[str, str] = {}
        for direction, data in (("in", inputs), ("out", outputs)):
            for name, value in data.items():
                if name.startswith("params:") or name == "parameters":
                    continue
                size = describe_data(value)
                key = f"node.{node.name}.{direction}.{_safe(name)}"
                if size.count is not None:
                    metrics[f"{key}.count"] = float(size.count)
                if size.shape is not None:
                    tags[f"{key}.shape"] = "x".join(str(d) for d in size.shape)
        self._log(metrics, tags)

    @hook_impl
    def on_node_error(self, error: Exception, node: Node) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self._timings.append((_pipeline_of(node), node.name, seconds, "FAILED"))
        self._log(
            {f"node.{node.name}.duration_s": seconds, f"node.{node.name}.status": 0.0},
            {
                "sensorops.failed_node": node.name,
                "sensorops.error": f"{type(error).__name__}: {error}"[:4900],
            },
        )

    @hook_impl
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        self._report_timings()
        self._report_where_things_are(pipeline, catalog)
        release_project_lock((self._project_path or Path.cwd()) / "data")

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._report_timings()
        release_project_lock((self._project_path or Path.cwd()) / "data")

    def _log(self, metrics: dict[str, float], tags: dict[str, str]) -> None:
        if self._client is None or self._run_id is None:
            return
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self._client.log_batch(
            self._run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
            synchronous=True,
        )

    def _report_timings(self) -> None:
        if not self._timings:
            return
        per_pipeline: dict[str, float] = {}
        for pipeline, _, seconds, _ in self._timings:
            per_pipeline[pipeline] = per_pipeline.get(pipeline, 0.0) + seconds
        lines = [f"  {p:<14} {s:8.1f} s" for p, s in per_pipeline.items()]
        total = sum(per_pipeline.values())
        logger.info("time per pipeline:\n%s\n  %-14s %8.1f s", "\n".join(lines), "total", total)
        self._timings = []

    def _report_where_things_are(self, pipeline: Any, catalog: Any) -> None:
        """Log where the run's results are and how to open them (MLflow, registry, reports, viz)."""
        outputs = pipeline.all_outputs()
        lines = []
        if self._run_id is not None:
            import mlflow

            uri = mlflow.get_tracking_uri()
            run = mlflow.MlflowClient().get_run(self._run_id)
            lines.append(
                f"MLflow run       {self._run_id} (experiment id {run.info.experiment_id}) in {uri}"
            )
            path = f"#/experiments/{run.info.experiment_id}/runs/{self._run_id}"
            if uri.startswith(("http://", "https://")):
                lines.append(f"  open           {uri.rstrip('/')}/{path}")
            else:
                lines.append(f"  open           make ui -> http://127.0.0.1:5000/{path}")
        if "rpt_promotion" in outputs:
            report = _load_quietly(catalog, "rpt_promotion") or {}
            if report:
                lines.append(
                    f"registered model {report.get('model_name')} v{report.get('version')} -> "
                    f"{report.get('target')}: {report.get('status')}"
                    + (
                        f" (models:/{report.get('model_name')}@staging)"
                        if report.get("status") == "staged"
                        else ""
                    )
                )
                lines.append(
                    f"  to production  sensorops models promote {report.get('model_name')} "
                    f"{report.get('version')} --to production"
                )
        for name, label in (
            ("rpt_compression_comparison_md", "comparison table"),
            ("rpt_evaluation", "evaluation"),
            ("rpt_dq_summary", "data quality"),
        ):
            if name in outputs:
                where = _describe_dataset(catalog, name).strip(" ()")
                if where:
                    lines.append(f"{label:<16} {where}")
        if "rpt_dq_summary" in outputs:
            summary = _load_quietly(catalog, "rpt_dq_summary") or {}
            indexes = {
                stage.get("data_docs_index")
                for stage in (summary.get("stages") or {}).values()
                if stage.get("data_docs_index")
            }
            for index in sorted(indexes):
                lines.append(f"{'data docs':<16} {index}")
        if lines:
            lines.append(f"{'lineage':<16} make viz -> http://127.0.0.1:4141")
            logger.info("where the results are:\n  %s", "\n  ".join(lines))


def _load_quietly(catalog: Any, name: str) -> Any:
    try:
        return catalog.load(name)
    except Exception as exc:  # a missing or unreadable report must not fail a finished run
        logger.warning("could not read %s for the run summary: %s", name, exc)
        return None


def _describe_dataset(catalog: Any, name: str) -> str:
    """`` (path)`` for file datasets (also inside kedro-mlflow wrappers), else an empty string."""
    try:
        dataset = catalog.get(name)
        description = dataset._describe()
        filepath = description.get("filepath")
        if filepath is None and isinstance(description.get("dataset"), dict):
            filepath = description["dataset"].get("filepath")
        if filepath is None:
            inner = getattr(dataset, "_dataset", None) or getattr(dataset, "dataset", None)
            filepath = inner._describe().get("filepath") if inner is not None else None
    except Exception:  # a dataset without _describe or filepath
        return ""
    return f" ({filepath})" if filepath else ""


def _pipeline_of(node: Node) -> str:
    for tag in PIPELINE_TAGS:
        if tag in node.tags:
            return tag
    return "other"


def _safe(name: str) -> str:
    """MLflow keys allow alphanumerics, ``_ - . /`` and spaces; Kedro names may hold ``:`` or ``@``."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
