"""MLflow side of monitoring: the version to watch, its reference, the monitoring run, the tags.

The monitoring run goes to its own experiment (``monitoring.experiment``, default
``sensorops-monitoring``), one run per check, tagged with the model name and version; the
version gets ``monitoring.decision``, ``monitoring.reasons``, ``monitoring.run_id``,
``monitoring.window_digest`` and ``monitoring.checked_at``. A failed logging run is ended
``FAILED``; the version tags are written last, only after the run's logging succeeded.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sensorops.monitoring.config import MonitoringConfig
from sensorops.monitoring.errors import ReferenceError_
from sensorops.monitoring.monitor import MonitoringReport

logger = logging.getLogger(__name__)


def client(tracking_uri: str | None = None) -> Any:
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri or mlflow.get_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def resolve_version(
    config: MonitoringConfig, tracking_uri: str | None = None
) -> tuple[str, dict[str, str]]:
    """The watched version (pinned, else the alias, else the fallback alias) and its tags."""
    from mlflow.exceptions import MlflowException

    c = client(tracking_uri)
    if config.version is not None:
        try:
            mv = c.get_model_version(config.model, config.version)
        except MlflowException as exc:
            raise ReferenceError_(
                f"{config.model} has no version {config.version!r}: {exc}"
            ) from exc
        return str(mv.version), dict(mv.tags)
    tried = []
    for alias in (config.alias, config.fallback_alias):
        if not alias:
            continue
        tried.append(alias)
        try:
            mv = c.get_model_version_by_alias(config.model, alias)
        except MlflowException:
            continue
        return str(mv.version), dict(mv.tags)
    raise ReferenceError_(
        f"{config.model} has no version under alias(es) {tried}; set monitoring.version or "
        "promote a version first"
    )


def load_model(
    name: str, version: str, tracking_uri: str | None = None, cache: Path | None = None
) -> Any:
    """The version's SensorModel (CPU ONNX Runtime), downloaded once into ``cache``."""
    import mlflow

    from sensorops.serving.model_source import Resolved, load_version

    uri = tracking_uri or mlflow.get_tracking_uri()
    mv = client(uri).get_model_version(name, version)
    loaded = load_version(
        uri,
        Resolved(name, "monitoring", str(mv.version), str(mv.source)),
        providers=["CPUExecutionProvider"],
        cache_dir=cache,
    )
    return loaded.model


def log_run(
    report: MonitoringReport,
    config: MonitoringConfig,
    artifacts: list[Path],
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """One run in ``config.experiment`` with the report's numbers; then the version tags."""
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(config.experiment)
    exp_id = exp.experiment_id if exp is not None else c.create_experiment(config.experiment)
    tags = {
        "model": report.model,
        "model_version": report.version,
        "decision": report.decision,
        "window.digest": report.window["digest"],
        "mlflow.runName": f"monitor-{report.model}-v{report.version}",
    }
    run = c.create_run(exp_id, tags=tags)
    rid = run.info.run_id
    try:
        metrics = {
            "n_records": report.window["n_records"],
            "n_labelled": report.window["n_labelled"],
            "decision_level": {"ok": 0, "warn": 1, "retrain": 2}[report.decision],
            "drifted_channels": len(report.drifted_channels),
        }
        for d in report.drift:
            metrics[f"drift.{d['signal']}.effect"] = d["effect"]
            metrics[f"drift.{d['signal']}.p_adjusted"] = d["p_adjusted"]
            if d["psi"] is not None:
                metrics[f"drift.{d['signal']}.psi"] = d["psi"]
        perf = report.performance
        for key in ("accuracy", "macro_f1", "p_value", "drop_points"):
            if perf.get(key) is not None:
                metrics[f"performance.{key}"] = perf[key]
        for key in ("latency_p50_ms", "latency_p99_ms"):
            if key in report.traffic:
                metrics[f"traffic.{key}"] = report.traffic[key]
        for k, v in metrics.items():
            if v is not None and math.isfinite(float(v)):
                c.log_metric(rid, k.replace(":", "."), float(v))
        for k, v in config.window.model_dump(mode="json").items():
            c.log_param(rid, f"window.{k}", str(v))
        for path in artifacts:
            c.log_artifact(rid, str(path), "monitoring")
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "report.json"
            p.write_text(json.dumps(report.to_dict(), indent=2, default=str))
            c.log_artifact(rid, str(p), "monitoring")
        c.set_terminated(rid, "FINISHED")
    except Exception:
        c.set_terminated(rid, "FAILED")
        raise
    checked = datetime.now(UTC).isoformat(timespec="seconds")
    version_tags = {
        "monitoring.decision": report.decision,
        "monitoring.reasons": " | ".join(report.reasons)[:4900],
        "monitoring.run_id": rid,
        "monitoring.window_digest": report.window["digest"],
        "monitoring.checked_at": checked,
        "monitoring.drifted_channels": ",".join(report.drifted_channels),
    }
    for k, v in version_tags.items():
        c.set_model_version_tag(report.model, report.version, k, v)
    return {
        "run_id": rid,
        "experiment": config.experiment,
        "experiment_id": exp_id,
        "version_tags": version_tags,
    }
