"""What a ``kedro run`` tells its user: missing inputs, run tags, and where every report is.

Kedro-aware helpers of :mod:`sensorops.hooks`, kept out of the hooks so that they stay thin. A
dataset is a *report* when its catalog entry says so::

    rpt_promotion:
      type: sensorops.datasets.JSONDataset
      filepath: data/08_reporting/promotion.json
      metadata:
        sensorops:
          report: registered model                     # the label of its line(s)
          summary: "{model_name} v{version} -> {target}: {status}"   # optional, from the loaded dict

Without ``summary`` the line gives the dataset's file. Nothing here names a dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sensorops
from sensorops.data_stats import describe_data
from sensorops.hygiene import process_tags
from sensorops.tracking import git_commit

logger = logging.getLogger(__name__)


def requested_pipelines(run_params: Mapping[str, Any]) -> list[str]:
    """The pipeline names of a run (``--pipelines=a,b``, ``--pipeline=a`` or the default)."""
    names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
    return [names] if isinstance(names, str) else list(names)


def filepath(catalog: Any, name: str) -> str | None:
    """The file of a file dataset (also inside kedro-mlflow wrappers), else ``None``."""
    try:
        described = catalog.get(name)._describe()
    except Exception:  # a name the catalog cannot resolve, a dataset without _describe
        return None
    path = described.get("filepath") or (described.get("dataset") or {}).get("filepath")
    return str(path) if path else None


def missing_inputs(pipeline: Any, catalog: Any, registered: Mapping[str, Any]) -> list[str]:
    """One line per free input of ``pipeline`` missing on disk, naming the pipeline that makes it."""
    lines = []
    for name in sorted(pipeline.inputs()):
        if name.startswith("params:") or name == "parameters" or name not in catalog:
            continue
        if catalog.exists(name):
            continue
        makers = [
            p for p, pl in registered.items() if p != "__default__" and name in pl.all_outputs()
        ]
        how = " or ".join(f"`kedro run --pipelines={p}`" for p in makers)
        where = f" ({path})" if (path := filepath(catalog, name)) else ""
        lines.append(
            f"  - {name}{where} does not exist yet; produce it with "
            + (how or "(no registered pipeline produces it; provide the file)")
        )
    return lines


def data_sizes(
    node: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> tuple[dict[str, float], dict[str, str]]:
    """Row/element counts (metrics) and shapes (tags) of a node's inputs and outputs, keyed
    ``node.<node>.<in|out>.<dataset>.{count,shape}``; parameters are left out."""
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for direction, data in (("in", inputs), ("out", outputs)):
        for name, value in data.items():
            if name.startswith("params:") or name == "parameters":
                continue
            size, key = describe_data(value), f"node.{node}.{direction}.{mlflow_key(name)}"
            if size.count is not None:
                metrics[f"{key}.count"] = float(size.count)
            if size.shape is not None:
                tags[f"{key}.shape"] = "x".join(str(d) for d in size.shape)
    return metrics, tags


def timing_lines(seconds: Mapping[str, float]) -> str:
    """The time per pipeline and the total, one aligned line each."""
    lines = [f"  {p:<14} {s:8.1f} s" for p, s in seconds.items()]
    return "\n".join([*lines, f"  {'total':<14} {sum(seconds.values()):8.1f} s"])


def run_tags(run_params: Mapping[str, Any], project_path: Path) -> dict[str, str]:
    """Tags of the run: kedro run id, pipelines, env, version, git commit and dirty flag, and the
    process (PID, host, start) so that the next run can close this one if it is killed."""
    tags = {
        "sensorops.kedro_run_id": str(
            run_params.get("run_id") or run_params.get("session_id") or ""
        ),
        "sensorops.pipelines": ",".join(requested_pipelines(run_params)),
        "sensorops.env": str(run_params.get("env") or "local"),
        "sensorops.version": sensorops.__version__,
        **process_tags(),
    }
    commit, dirty = git_commit(project_path)
    if commit:
        tags |= {"sensorops.git_commit": commit, "mlflow.source.git.commit": commit}
        tags["sensorops.git_dirty"] = str(dirty).lower()
    return tags


def run_lines(run_id: str | None) -> list[str]:
    """Where the MLflow run is and how to open it."""
    if run_id is None:
        return []
    import mlflow

    uri, run = mlflow.get_tracking_uri(), mlflow.MlflowClient().get_run(run_id)
    path = f"#/experiments/{run.info.experiment_id}/runs/{run_id}"
    web = uri.startswith(("http://", "https://"))
    return [
        f"MLflow run       {run_id} (experiment id {run.info.experiment_id}) in {uri}",
        f"  open           {uri.rstrip('/')}/{path}"
        if web
        else f"  open           make ui -> http://127.0.0.1:5000/{path}",
    ]


def report_lines(pipeline: Any, catalog: Any) -> list[str]:
    """One or more lines per output whose catalog metadata marks it a report."""
    lines = []
    for name in sorted(pipeline.all_outputs()):
        try:
            meta = (catalog.get(name).metadata or {}).get("sensorops") or {}
        except Exception:  # a name the catalog cannot resolve, a dataset without metadata
            continue
        if not meta.get("report"):
            continue
        text = filepath(catalog, name) or ""
        if meta.get("summary"):
            try:
                data = catalog.load(name)
                text = str(meta["summary"]).format_map(
                    data if isinstance(data, Mapping) else {"value": data}
                )
            except Exception as exc:  # a missing or unreadable report must not fail a finished run
                logger.warning("could not summarise %s for the run summary: %s", name, exc)
        for i, part in enumerate(p for p in text.split("\n") if p):
            lines.append(f"{str(meta['report']) if i == 0 else '':<16} {part}")
    return lines


def registered_pipelines() -> set[str]:
    """The project's pipeline names (a node belongs to the one among its tags)."""
    from kedro.framework.project import pipelines

    try:
        return set(pipelines) - {"__default__"}
    except Exception:  # no project configured (hooks used on their own)
        return set()


def mlflow_key(name: str) -> str:
    """MLflow keys allow alphanumerics, ``_ - . /`` and spaces; Kedro names may hold ``:`` or ``@``."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
