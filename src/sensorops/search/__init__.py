"""Architecture and hyperparameter search over the project's own trainer (Optuna, Kedro-free).

- :mod:`~sensorops.search.config`: the strict ``search`` parameters (space, budget, pruner, study);
- :mod:`~sensorops.search.study`: the multi-objective study (validation accuracy vs ONNX Runtime
  p50 latency at batch 1 vs ONNX weights), pruning on validation loss, RDB storage and resume,
  one nested MLflow run per trial;
- :mod:`~sensorops.search.report`: trials table, Pareto front and plot, the chosen trial as a
  ``parameters_training.yml`` override.

Optuna is imported by :mod:`~sensorops.search.study` only (never by :mod:`sensorops.training`).
"""

from sensorops.search.config import SearchConfig, SearchConfigError

__all__ = ["SearchConfig", "SearchConfigError"]
