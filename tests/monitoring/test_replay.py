"""A replay of drifted traffic through the real service (Ray Serve) leads monitoring to name the
drifted channel; the window is selected by this test's own request ids."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest

from sensorops.monitoring import LogError, load_monitoring_config, monitor, read_window
from sensorops.monitoring import simulate as sim
from sensorops.monitoring.config import WindowConfig
from tests.monitoring.conftest import TEST_SOURCE
from tests.serving_fixtures import http


def _body(values: np.ndarray) -> dict[str, Any]:
    data = [[None if np.isnan(x) else float(x) for x in row] for row in values.T]
    return {"data": data}


@pytest.mark.slow
def test_drifted_replay_through_the_service_names_the_channel(
    service: Any, serving_model: dict[str, Any], mon_reference: Any
) -> None:
    assert mon_reference.version == serving_model["version"]
    prefix = f"mon-replay-{uuid.uuid4().hex[:6]}-"
    traffic = sim.apply_drift(sim.synthetic_traffic(TEST_SOURCE, 40, 21),
                              sim.DriftSpec(mode="gain", channel=1), seed=21)  # fmt: skip
    for i, values in enumerate(traffic.values):
        status, _, body = http("POST", f"{service.url}/v1/predict", _body(values),
                               headers={"x-request-id": f"{prefix}{i:04d}"})  # fmt: skip
        assert status == 200, body
    window = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the log rolls every flush_s (1 s in the fixture)
        try:
            window = read_window(service.out / "prediction_log",
                                 WindowConfig(request_id_prefix=prefix))  # fmt: skip
        except LogError:
            window = None  # no part yet
        if window is not None and window.n == 40:
            break
        time.sleep(0.5)
    assert window is not None and window.n == 40
    assert set(window.records["version"]) == {serving_model["version"]}
    report, _ = monitor(window, mon_reference, load_monitoring_config({}))
    assert report.decision in ("warn", "retrain"), report.reasons
    assert report.drifted_channels == ["temperature"], report.reasons
    latency = window.records["latency_ms"]
    assert (latency > 0).all() and report.traffic["latency_p99_ms"] >= report.traffic[
        "latency_p50_ms"
    ]
