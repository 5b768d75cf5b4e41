"""Monitoring of served traffic and the retraining loop (library code; no Kedro imports).

- :mod:`.log_reader`: read and validate a window of the prediction log, join the feedback;
- :mod:`.reference`: the training reference of a version (its training series, summarised as
  the service logs them);
- :mod:`.drift`: the drift tier (per-channel KS + PSI, alignment cost, confidence, predicted
  classes; BH/Bonferroni across all tests);
- :mod:`.performance`: accuracy, macro-F1, confusion and a Fisher test against the offline figure;
- :mod:`.monitor`: live data quality, the decision ``ok | warn | retrain`` and the report;
- :mod:`.dashboard`: the PNG; :mod:`.publish`: MLflow (experiment, version tags);
- :mod:`.retraining`: the retraining set, its leak-free split and lineage;
- :mod:`.simulate`: clean and drifted traffic (stuck, gain/offset, new class, covariate shift).
"""

from sensorops.monitoring.config import (
    MonitoringConfig,
    MonitoringConfigError,
    RetrainingConfig,
    load_monitoring_config,
    load_retraining_config,
)
from sensorops.monitoring.errors import LogError, ReferenceError_, RetrainingError
from sensorops.monitoring.log_reader import LogWindow, read_window
from sensorops.monitoring.monitor import MonitoringReport, monitor
from sensorops.monitoring.reference import Reference

__all__ = [
    "LogError",
    "LogWindow",
    "MonitoringConfig",
    "MonitoringConfigError",
    "MonitoringReport",
    "Reference",
    "ReferenceError_",
    "RetrainingConfig",
    "RetrainingError",
    "load_monitoring_config",
    "load_retraining_config",
    "monitor",
    "read_window",
]
