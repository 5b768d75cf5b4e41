"""Distributed training of sensor-series classifiers (no Kedro imports).

Entry point: ``python -m sensorops.training.train --config resolved_config.json`` or
``--config conf/base/parameters_training.yml --set loop.epochs=5`` (also under ``torchrun``).
Trainer extensions: :mod:`sensorops.training.callbacks`. From Python: :func:`sensorops.training.launcher.launch_training`; evaluation:
:func:`sensorops.training.evaluation.evaluate_checkpoint`.
"""

from sensorops.training.config import ConfigError, TrainingConfig

__all__ = ["ConfigError", "TrainingConfig"]
