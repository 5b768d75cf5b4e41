"""The controller's registry writes on a real (sqlite) MLflow registry, with a written arm log.

No service here: the arm log is written by the test, so every decision's input is known. The
end-to-end run with the real service is tests/rollout/test_rollout.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sensorops.registry.client import connect
from sensorops.registry.config import PromotionConfig
from sensorops.registry.history import read_history
from sensorops.rollout.config import RolloutConfig
from sensorops.rollout.controller import Rollout, RolloutError
from sensorops.rollout.state import ROLLOUT_TAG, RolloutState, parse_state


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = tmp_path_factory.mktemp("ctl") / "mlflow.db"
    db.touch()
    return connect(f"sqlite:///{db}", check=False)  # the schema is made once per module


@pytest.fixture()
def ro(registry: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Rollout:
    name = f"ctl-{request.node.name[5:30]}"  # one model per test in the module's registry
    reg = registry
    reg.client.create_registered_model(name)
    for _ in range(2):
        reg.client.create_model_version(name, str(tmp_path / "artifact"))
    reg.client.set_registered_model_alias(name, "production", "1")
    cfg = RolloutConfig.model_validate(
        {
            "interval_s": 0.5,
            "flush_grace_s": 0.0,
            "step_points": 25.0,
            "initial_weight": 50.0,
            "checks": {"min_requests": 5, "min_labelled": 5},
            "lock": {"settle_s": 0.3, "max_write_gap_s": 0.25, "timeout_s": 5.0},
        }
    )
    pcfg = PromotionConfig.from_params({"lock": {"settle_s": 0.3, "max_write_gap_s": 0.25}})
    return Rollout(reg, name, cfg, pcfg, tmp_path / "arm", tmp_path / "fb")


def _begin(ro: Rollout, weight: float = 50.0) -> RolloutState:
    state = RolloutState(version="2", production="1", weight=weight, step_started_at=time.time())
    ro.reg.client.set_registered_model_alias(ro.name, "canary", "2")
    ro.reg.client.set_registered_model_tag(ro.name, ROLLOUT_TAG, state.to_json())
    return state


def _log(ro: Rollout, canary_ms: float, n: int = 12) -> None:
    now = pd.Timestamp.now(tz="UTC")
    rows, labels = [], []
    for i in range(n):
        for arm, version, ms in (("production", "1", 10.0), ("canary", "2", canary_ms)):
            rid = f"{arm}-{i}-{time.time_ns()}"
            rows.append({"request_id": rid, "series_index": 0, "time": now, "model": ro.name,
                         "version": version, "arm": arm, "shadow": False, "status": 200,
                         "latency_ms": ms, "cpu_s": 0.001, "predicted": "a"})  # fmt: skip
            labels.append({"request_id": rid, "series_index": 0, "label": "a", "time": now})
    day = now.strftime("%Y-%m-%d")
    for root, frame in ((ro.arm_log, rows), (ro.feedback_log, labels)):
        part = root / f"date={day}"
        part.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(frame).to_parquet(part / f"part-{time.time_ns()}.parquet")


def test_a_slow_canary_is_rolled_back_with_its_numbers(ro: Rollout) -> None:
    _begin(ro)
    _log(ro, canary_ms=400.0)
    assert ro.run() == 1
    rm = ro.reg.client.get_registered_model(ro.name)
    assert ROLLOUT_TAG not in rm.tags and "canary" not in rm.aliases
    assert str(rm.aliases["production"]) == "1"
    event = read_history(ro.reg, ro.name)[-1]
    assert event["kind"] == "rollout" and event["action"] == "rollback"
    assert "p50 canary 400.0 ms" in event["reason"] and event["checks"]["latency_p50"] == "fail"
    assert event["arms"]["canary"]["requests"] == 12 and event["weight_from"] == 50.0


def test_steps_and_holds_are_recorded_and_the_last_step_is_the_promotion(ro: Rollout) -> None:
    _begin(ro)
    seen = []
    # no arm log at all: hold, held in the tag (no history event), then rolled back after max_holds
    ro.cfg = ro.cfg.model_copy(update={"max_holds": 2})
    assert ro.run(on_decision=lambda s, d: seen.append(d.action)) == 1
    assert seen == ["hold", "hold"]
    assert read_history(ro.reg, ro.name)[-1]["reason"].startswith("2 holds in a row")
    # a good window steps 50 -> 75; the next step would reach 100: that is the promotion
    _begin(ro)
    _log(ro, canary_ms=10.0)
    new = ro.step(ro.evaluate(parse_state(ro.reg.client.get_registered_model(ro.name).tags)))
    assert new.weight == 75.0 and new.step == 1
    event = read_history(ro.reg, ro.name)[-1]
    assert (event["action"], event["weight_from"], event["weight"]) == ("step", 50.0, 75.0)
    assert event["checks"]["latency_p50"] == "pass" and event["arms"]["canary"]["labelled"] == 12
    _log(ro, canary_ms=10.0)
    assert ro.evaluate(new).action == "promote"
    with pytest.raises(RolloutError, match="is the promotion"):
        ro.step(manual=True)


def test_a_half_written_start_is_repaired(ro: Rollout) -> None:
    ro.reg.client.set_registered_model_alias(ro.name, "canary", "2")  # killed before the tag
    st = ro.status()
    assert "without a rollout tag" in st["inconsistent"] and st["rollout"] is None
    with pytest.raises(RolloutError, match="no rollout is in progress"):
        ro.abort("manual")
    assert "canary" not in ro.reg.client.get_registered_model(ro.name).aliases
