"""Distributed training of sensor-series classifiers (no Kedro imports).

Entry point: ``python -m sensorops.training.train --config resolved_config.json`` (also under
``torchrun``). From Python: :func:`sensorops.training.launcher.launch_training`; evaluation:
:func:`sensorops.training.evaluation.evaluate_checkpoint`.
"""

from sensorops.training.config import ConfigError, TrainingConfig

__all__ = ["ConfigError", "TrainingConfig"]
