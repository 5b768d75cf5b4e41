"""The promotion's infrastructure check refuses a version that cannot be served, with numbers.

It starts a sandboxed service with a Ray of its own. The file sorts after test_service.py on purpose:
run before it (as test_infra_check.py), the service tests' session Ray cluster then failed to deploy
its Serve app in one full run; the cause is not yet understood."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensorops.serving.config import InfraCheckConfig
from sensorops.serving.infra_check import check_before_staging, infra_check

pytestmark = pytest.mark.slow


def test_infra_check_refuses_a_bare_onnx_version(e2e: dict[str, Any], mlflow_server: str) -> None:
    """A version without the preprocessing state (the old bare-ONNX format) is refused."""
    import mlflow
    import mlflow.onnx
    import onnx

    onnx_file = sorted(Path(e2e["project"]).glob("data/06_models/onnx/*.onnx"))[0]
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    mlflow.set_experiment("infra-check-test")
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx.load(str(onnx_file)), name="bare")
    mv = mlflow.register_model(info.model_uri, "sensorops-broken")
    canned = [np.zeros((40, 3))]
    result = infra_check(mlflow_server, "sensorops-broken", mv.version, canned,
                         InfraCheckConfig(n_requests=3))  # fmt: skip
    assert not result.passed
    assert "does not load as a servable model" in result.reasons[0]
    assert "model.onnx + preprocessing/" in result.reasons[0]
    assert result.numbers["latency_budget_ms"] == 1000.0
    assert f"sensorops-broken v{mv.version} refused" in result.message()
    # the pipeline hook: disabled -> None; enabled -> the same refusal
    registered = {"model_name": "sensorops-broken", "tracking_uri": mlflow_server,
                  "versions": [{"variant": "fp32", "version": mv.version}]}  # fmt: skip
    import pandas as pd

    raw = pd.DataFrame({"series_id": ["a"] * 40, "t": range(40), "x": 0.0, "y": 0.0, "z": 0.0,
                        "label": "l", "split": "test"})  # fmt: skip
    assert (
        check_before_staging(registered, "fp32", raw, {"infra_check": {"enabled": False}}) is None
    )
    refused = check_before_staging(registered, "fp32", raw, {"infra_check": {"n_requests": 2}})
    assert refused is not None and not refused.passed
