"""Online serving on Ray Serve (no Kedro imports): ``sensorops serve``, the app, jobs, infra check.

Modules: :mod:`~sensorops.serving.app` (the deployment and its routes), :mod:`.runner` (start/stop,
ingress), :mod:`.cli` (``sensorops serve``), :mod:`.config` (``parameters_serving.yml``),
:mod:`.protocol` (request parsing), :mod:`.model_source` (alias -> loaded model), :mod:`.jobs`,
:mod:`.prediction_log`, :mod:`.metrics`, :mod:`.infra_check`, :mod:`.k8s` (KubeRay import path).
Importing this package imports neither Ray nor MLflow.
"""
