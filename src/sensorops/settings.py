"""Kedro project settings for sensorops.

- Telemetry is off for this project (also via ``.telemetry``); nothing is sent anywhere.
- kedro-mlflow's hook auto-registers as a plugin; ``sensorops.hooks`` adds per-node tracking,
  early config validation and a tracking-server reachability check on top of it.
- MLflow's HTTP retries are bounded for project runs (:data:`sensorops.tracking.HTTP_RETRY_DEFAULTS`;
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``/``_BACKOFF_FACTOR``/``_TIMEOUT`` in the environment win).
- ``tracking_uri`` is a config resolver used by ``conf/base/mlflow.yml``: ``MLFLOW_TRACKING_URI``
  when set, else the embedded ``sqlite:///<project root>/mlflow.db``.
"""

from __future__ import annotations

import os

from kedro.config import OmegaConfigLoader

from sensorops.config_validation import CONFIG_LOADER_ARGS as _SHARED_LOADER_ARGS
from sensorops.console import (
    configure_project_logging,
    install_excepthook,
    quiet_third_party_warnings,
)
from sensorops.hooks import NodeTrackingHooks, ProjectConfigHooks
from sensorops.tracking import bound_http_retries, default_tracking_uri

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
# a tracking server that dies mid-run fails the run in about a minute, not 26 (user values win)
bound_http_retries()
# an uncaught error: one block on the console, the traceback in logs/last-error.log
install_excepthook()
# logs/sensorops.log and the third-party noise filter on every handler (sensorops.console.NOISE)
configure_project_logging()
# known third-party warnings, each with its reason (sensorops.console.WARNINGS)
quiet_third_party_warnings()

HOOKS = (ProjectConfigHooks(), NodeTrackingHooks())

# Telemetry stays off even where the kedro-telemetry plugin is installed (it is a kedro dependency).
DISABLE_HOOKS_FOR_PLUGINS: tuple[str, ...] = ("kedro-telemetry", "kedro_telemetry")

CONFIG_LOADER_CLASS = OmegaConfigLoader
# The one loader policy (base/local envs, soft merge), shared with the CLI's parameter loader.
CONFIG_LOADER_ARGS = {
    **_SHARED_LOADER_ARGS,
    "custom_resolvers": {"sensorops.tracking_uri": default_tracking_uri},
}
