"""Import path for Serve config files and KubeRay (``import_path: sensorops.serving.k8s:app``).

The application is built from ``conf/base/parameters_serving.yml`` of the installed project
(``SENSOROPS_CONF``, default ``./conf``) plus these environment variables, which a RayService
pod spec sets:

- ``MLFLOW_TRACKING_URI`` (required): where the replicas resolve the alias and download it;
- ``SENSOROPS_SERVING_MODEL`` / ``SENSOROPS_SERVING_ALIAS``: override ``serving.model`` /
  ``serving.alias``;
- ``SENSOROPS_DATA``: root for the prediction log and job folders (default the working dir).
"""

from __future__ import annotations

import os
from pathlib import Path

from sensorops.serving.app import build_app
from sensorops.serving.config import ServingConfig, load_serving_config


def config_from_env() -> ServingConfig:
    overrides: dict[str, object] = {"tracking_uri": os.environ.get("MLFLOW_TRACKING_URI")}
    for key in ("model", "alias"):
        value = os.environ.get(f"SENSOROPS_SERVING_{key.upper()}")
        if value:
            overrides[key] = value
    if not overrides["tracking_uri"]:
        raise RuntimeError("MLFLOW_TRACKING_URI must name the tracking server the service reads")
    conf = Path(os.environ.get("SENSOROPS_CONF", "conf"))
    cfg = (
        load_serving_config(conf, None, overrides) if conf.is_dir() else ServingConfig(**overrides)
    )
    return cfg.resolve_paths(Path(os.environ.get("SENSOROPS_DATA", ".")))


app = build_app(config_from_env()) if os.environ.get("MLFLOW_TRACKING_URI") else None
