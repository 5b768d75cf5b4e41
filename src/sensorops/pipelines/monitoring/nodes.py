"""Thin Kedro nodes of the ``monitoring`` pipeline over :mod:`sensorops.monitoring`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from sensorops.model_input import ModelInput, split_digest
from sensorops.monitoring import (
    LogWindow,
    Reference,
    ReferenceError_,
    load_monitoring_config,
    monitor,
    publish,
    read_window,
)
from sensorops.monitoring.dashboard import dashboard
from sensorops.monitoring.reference import build_reference, reference_path, training_series

logger = logging.getLogger(__name__)


def read_log_window(params: dict[str, Any]) -> LogWindow:
    """The validated window (errors name the file; nothing is written before this succeeds)."""
    cfg = load_monitoring_config(params)
    return read_window(cfg.log_dir, cfg.window, feedback_dir=cfg.feedback_dir, model=cfg.model)


def version_reference(
    window: LogWindow,
    int_sensor_long: Any,
    mi_model_input: ModelInput,
    params: dict[str, Any],
) -> Reference:
    """The watched version's reference (cached per version; built from its training data)."""
    cfg = load_monitoring_config(params)
    version, tags = publish.resolve_version(cfg)
    return ensure_reference(cfg, version, tags, int_sensor_long, mi_model_input)


def ensure_reference(
    cfg: Any,
    version: str,
    tags: dict[str, str],
    int_sensor_long: Any,
    mi: ModelInput,
    tracking_uri: str | None = None,
) -> Reference:
    path = reference_path(cfg.reference.cache_dir, cfg.model, version)
    if path.exists():
        return Reference.load(path)
    expected = tags.get("data.train_digest")
    local = split_digest(mi, "train")
    if cfg.reference.require_lineage and expected != local:
        raise ReferenceError_(
            f"the project's training data (mi_model_input train digest {local}) is not "
            f"{cfg.model} v{version}'s (tag data.train_digest={expected}); run the ingestion of "
            f"that version's data, or put its reference at {path}"
        )
    model = publish.load_model(
        cfg.model, version, tracking_uri, cache=Path(cfg.reference.cache_dir) / "models"
    )
    channels = list(model.state.channels)
    _, values, labels, splits = training_series(
        int_sensor_long,
        channels,
        tuple(cfg.reference.splits),
        cfg.reference.max_series,
        cfg.reference.seed,
    )
    ref = build_reference(
        model, cfg.model, version, values, labels, tags, tuple(cfg.reference.splits), splits
    )
    ref.heldout_splits = list(cfg.reference.heldout_splits)
    ref.save(path)
    logger.info("monitoring reference of %s v%s: %d series -> %s", cfg.model, version, ref.n, path)
    return ref


def check_window(
    window: LogWindow, reference: Reference, params: dict[str, Any], dq_params: dict[str, Any]
) -> tuple[dict[str, Any], Figure, dict[str, Any]]:
    """Quality, drift, performance, decision -> ``rpt_monitoring``, the dashboard, metrics."""
    cfg = load_monitoring_config(params)
    records = window.records
    other = records[records["version"].astype(str) != reference.version]
    if len(other):
        logger.info(
            "%d records of other versions %s left out",
            len(other),
            sorted(set(other["version"].astype(str))),
        )
        window = LogWindow(
            records=records[records["version"].astype(str) == reference.version].reset_index(
                drop=True
            ),
            files=window.files,
            digest=window.digest,
            log_dir=window.log_dir,
            classes=window.classes,
            n_channels=window.n_channels,
        )
    report, plot = monitor(window, reference, cfg, dq_params, gx_dir=f"{cfg.report_dir}/gx")
    metrics = {
        "monitoring.decision_level": {"ok": 0, "warn": 1, "retrain": 2}[report.decision],
        "monitoring.n_records": report.window["n_records"],
        "monitoring.n_drifted_channels": len(report.drifted_channels),
    }
    from sensorops.metrics import as_mlflow_metrics

    return report.to_dict(), dashboard(plot), as_mlflow_metrics(metrics)


def publish_report(report: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Log to the ``sensorops-monitoring`` experiment and tag the version (last step)."""
    from sensorops.monitoring import MonitoringReport

    cfg = load_monitoring_config(params)
    rep = MonitoringReport.from_dict(report)
    png = Path(cfg.report_dir) / "dashboard.png"
    out = publish.log_run(rep, cfg, [png] if png.exists() else [])
    return {**out, "decision": rep.decision, "version": rep.version, "reasons": rep.reasons}
