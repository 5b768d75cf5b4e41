"""Progressive rollout end to end: the real service (two replicas on the session's Ray cluster),
the real MLflow server, real ONNX models from the ``e2e`` run, the real ``sensorops rollout`` CLI.

The module registers its own model, ``sensorops-rollout-test`` (copies of the e2e run's staged
fp32 version), so the aliases other tests use never move. Thresholds: ``conf/test/
parameters_rollout.yml`` (50 % -> 75 % -> promotion, a 3 s interval). Tests run in file order: the good
candidate becomes production, then a slow one is rolled back while production stays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import yaml

from sensorops.registry.client import Registry
from sensorops.registry.config import PromotionConfig
from sensorops.registry.history import read_history
from sensorops.registry.stages import STAGE_TAG
from sensorops.registry.transitions import AUDIT_TAG, promote, read_state
from sensorops.rollout.armstats import arm_stats
from sensorops.rollout.replay import load_series, replay
from sensorops.rollout.state import ROLLOUT_LOCK_TAG, ROLLOUT_TAG, parse_state
from tests.conftest import kill_process_tree
from tests.serving_fixtures import ServiceProcess, http

pytestmark = pytest.mark.slow

NAME = "sensorops-rollout-test"


def _until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _copy(reg: Registry, src: str, version: str) -> str:
    """Register the artifact of ``src`` v``version`` again under NAME (its gate tags included)."""
    import mlflow

    mv = reg.client.get_model_version(src, version)
    tags = {k: v for k, v in mv.tags.items() if k not in (STAGE_TAG, AUDIT_TAG)}
    with reg.fluent():
        new = mlflow.register_model(mv.source, NAME, tags={**tags, STAGE_TAG: "candidate"})
    return str(new.version)


@pytest.fixture(scope="module")
def rollout_env(
    serving_model: dict[str, Any],
    ray_cluster: dict[str, Any],
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    from mlflow import MlflowClient

    from sensorops.model_input import load_model_input

    project = serving_model["project"]
    reg = Registry(mlflow_server, MlflowClient(mlflow_server, mlflow_server))
    mi = load_model_input(project / "data/05_model_input/model_input.npz")
    pcfg = PromotionConfig.from_params(
        yaml.safe_load((project / "conf/test/parameters_promotion.yml").read_text())["promotion"]
    )
    v1 = _copy(reg, serving_model["name"], serving_model["version"])
    promote(reg, NAME, v1, "staging", config=pcfg, mi=mi, reason="rollout test")
    promote(reg, NAME, v1, "production", config=pcfg, mi=mi, reason="rollout test")
    v2 = _copy(reg, serving_model["name"], serving_model["version"])
    promote(reg, NAME, v2, "staging", config=pcfg, mi=mi, reason="rollout test candidate")
    out = tmp_path_factory.mktemp("rollout_out")
    params = out / "params.yml"
    params.write_text(yaml.safe_dump({"serving": {
        "app_name": "sensorops-rollout", "namespace": "sensorops-rollout",
        "batching": {"max_batch_size": 16, "max_wait_ms": 10.0},
        "reload": {"poll_s": 0.5},
        "prediction_log": {"dir": str(out / "prediction_log"), "flush_records": 50, "flush_s": 0.5},
        "jobs": {"dir": str(out / "jobs")},
        "rollout": {"log_dir": str(out / "arm_log")},
        "debug_delay_header": True,
    }}))  # fmt: skip
    port = ray_cluster["serve_port"]
    svc = ServiceProcess(
        project,
        [f"{NAME}@production", "--ray-address", ray_cluster["address"], "--tracking-uri",
         mlflow_server, "--port", str(port), "--params", str(params), "--num-replicas", "2"],
        ray_cluster["env"], f"http://127.0.0.1:{port}", out,
    )  # fmt: skip
    series, labels = load_series(project / "data/02_intermediate/sensor_long.parquet")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}

    def cli(*args: str, wait: bool = True) -> Any:
        cmd = [sys.executable, "-m", "sensorops.cli", "rollout", *args, "--env", "test",
               "--tracking-uri", mlflow_server, "--params", str(params)]  # fmt: skip
        if wait:
            return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
        return subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    try:
        svc.start()
        replicas = {http("GET", f"{u}/ready")[2]["replica"]: u for u in svc.urls}
        assert len(replicas) == 2, (svc.urls, replicas)  # each URL is one replica's own port
        yield {"reg": reg, "svc": svc, "urls": list(replicas.values()), "cli": cli, "v1": v1, "v2": v2, "pcfg": pcfg, "mi": mi,
               "series": series, "labels": labels, "out": out, "serving_model": serving_model}  # fmt: skip
    finally:
        svc.stop()


def _model(reg: Registry) -> tuple[dict[str, str], dict[str, str]]:
    rm = reg.client.get_registered_model(NAME)
    return dict(rm.tags), {a: str(v) for a, v in rm.aliases.items()}


class Watch:
    """Samples the registry while a rollout runs: a weight must never exist without its canary."""

    def __init__(self, reg: Registry) -> None:
        self.reg, self.samples, self.violations = reg, 0, []
        self.productions: set[str | None] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            tags, aliases = _model(self.reg)
            self.samples += 1
            self.productions.add(aliases.get("production"))
            state = parse_state(tags)
            if state is not None and state.weight > 0 and aliases.get("canary") != state.version:
                self.violations.append((state, aliases))

    def __enter__(self) -> Watch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def _load(env: dict[str, Any], seconds: float, headers: dict[str, str] | None = None) -> Any:
    """Replay the test split to both replicas in the background; returns (stop, threads, reports)."""
    stop, reports = threading.Event(), []
    threads = [
        threading.Thread(
            target=lambda u=u: reports.append(replay(
                u, env["series"], env["labels"], rate=8.0, max_requests=100_000,
                max_seconds=seconds, feedback_delay_s=0.2, concurrency=4, headers=headers,
                stop=stop)),
            daemon=True,
        )
        for u in env["urls"]
    ]  # fmt: skip
    for t in threads:
        t.start()
    return stop, threads, reports


def _stop_load(load: Any) -> list[Any]:
    stop, threads, reports = load
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return reports


def _ready(url: str) -> dict[str, Any]:
    return http("GET", f"{url}/ready")[2]


def test_good_candidate_climbs_and_becomes_production(rollout_env: dict) -> None:
    env, reg, cli = rollout_env, rollout_env["reg"], rollout_env["cli"]
    v1, v2 = env["v1"], env["v2"]
    r = cli("start", NAME, v2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert cli("start", NAME, v2).returncode == 4  # one rollout per model
    # replicas agree: both pick the weight up within the poll interval ...
    _until("both replicas at 50%", lambda: all(
        _ready(u)["rollout"] == {**_ready(u)["rollout"], "canary_version": v2, "weight": 50.0}
        for u in env["urls"]), timeout=30)  # fmt: skip
    assert len({_ready(u)["replica"] for u in env["urls"]}) == 2
    # ... and route one caller key to the same arm (sticky), about half of them to the canary
    body = {"data": env["series"][0].tolist()}
    arms: dict[str, set[str]] = {}  # key -> the arms it got, whichever replica answered
    replicas = set()
    for u in env["urls"]:
        for i in range(40):
            code, hdrs, out = http("POST", f"{u}/v1/predict", body, {"X-Request-Key": f"agree-{i}"})
            assert code == 200 and hdrs["x-model-arm"] == out["arm"] == out["alias"]
            assert (
                hdrs["x-model-version"] == out["version"] == (v2 if out["arm"] == "canary" else v1)
            )
            arms.setdefault(f"agree-{i}", set()).add(out["arm"])
            replicas.add(hdrs["x-replica"])
    assert len(replicas) == 2, replicas  # both replicas answered ...
    assert all(len(a) == 1 for a in arms.values()), arms  # ... and sent each key to one arm
    n_canary = sum(a == {"canary"} for a in arms.values())
    assert 8 <= n_canary <= 32, arms  # Binomial(40, 0.5): outside is p < 1e-4

    load = _load(env, seconds=240)
    with Watch(reg) as watch:
        ctl = cli("run", NAME, wait=False)
        try:
            _until("the controller's lease", lambda: ROLLOUT_LOCK_TAG in _model(reg)[0], 120)
            busy = cli("run", NAME)
            assert busy.returncode == 4, busy.stderr[-2000:]
            assert "locked by another promotion" in busy.stderr
            # the controller steps 50 -> 75 (its history event is its last write) ... and is
            # killed before it promotes
            _until("the step to 75%", lambda: any(
                e.get("action") == "step" for e in read_history(reg, NAME)
                if e.get("kind") == "rollout" and e.get("version") == v2), timeout=120)  # fmt: skip
        finally:
            kill_process_tree(ctl)  # type: ignore[arg-type]
        state = parse_state(_model(reg)[0])
        assert state is not None and state.weight == 75.0 and state.step == 1
        again = cli("run", NAME)  # resumes from the registry, not from memory
    reports = _stop_load(load)
    assert again.returncode == 0, again.stderr[-3000:]
    assert watch.samples > 5 and not watch.violations, watch.violations[:3]
    assert watch.productions <= {v1, v2}
    tags, aliases = _model(reg)
    assert aliases.get("production") == v2 and "canary" not in aliases
    assert ROLLOUT_TAG not in tags and ROLLOUT_LOCK_TAG not in tags
    ms = read_state(reg, NAME)
    assert ms.versions[v2].stage == "production" and ms.versions[v1].stage == "archived"
    events = [e for e in read_history(reg, NAME) if e.get("kind") == "rollout"]
    actions = [e["action"] for e in events]
    assert actions[-3:] == ["start", "step", "promoted"], actions
    step = events[-2]
    assert (step["weight_from"], step["weight"]) == (50.0, 75.0)
    arms = step["arms"]
    assert arms["canary"]["requests"] >= 10 and arms["production"]["requests"] >= 10
    assert arms["canary"]["versions"] == [v2] and arms["production"]["versions"] == [v1]
    assert arms["canary"]["labelled"] >= 10 and step["checks"]["accuracy"] == "pass"
    assert events[-1]["decision"] == "promote"
    promo = [e for e in read_history(reg, NAME) if e.get("kind") == "promote"][-1]
    assert promo["version"] == v2 and promo["to"] == "production" and promo["replaced"] == [v1]
    assert all(r.statuses.get("200", 0) > 0 for r in reports), reports
    assert sum(r.feedback_posted for r in reports) > 0
    _until("replicas back to one arm", lambda: all(
        _ready(u)["version"] == v2 and _ready(u)["rollout"]["canary_version"] is None
        for u in env["urls"]), timeout=30)  # fmt: skip


def test_shadow_then_a_slow_candidate_is_rolled_back(rollout_env: dict) -> None:
    env, reg, cli = rollout_env, rollout_env["reg"], rollout_env["cli"]
    v2 = env["v2"]
    assert _model(reg)[1]["production"] == v2, "runs after the promotion test"
    v3 = _copy(reg, env["serving_model"]["name"], env["serving_model"]["version"])
    promote(reg, NAME, v3, "staging", config=env["pcfg"], mi=env["mi"], reason="slow candidate")
    r = cli("start", NAME, v3, "--shadow")
    assert r.returncode == 0, r.stderr[-3000:]
    st = cli("status", NAME, "--json")
    assert st.returncode == 0, st.stderr[-3000:]
    ro = json.loads(st.stdout)["rollout"]
    assert (ro["version"], ro["mode"], ro["step"]) == (v3, "shadow", 0)
    assert ro["next"]["action"] == "hold"  # nothing scored yet in this window
    _until("both replicas in shadow mode", lambda: all(
        _ready(u)["rollout"]["canary_version"] == v3 and _ready(u)["rollout"]["mode"] == "shadow"
        for u in env["urls"]), timeout=30)  # fmt: skip
    since = time.time()
    body = {"data": env["series"][1].tolist()}
    for i in range(12):  # callers only ever see production in shadow mode
        code, hdrs, out = http("POST", f"{env['urls'][i % 2]}/v1/predict", body,
                               {"X-Request-Key": f"shadow-{i}"})  # fmt: skip
        assert code == 200 and out["arm"] == "production" and hdrs["x-model-version"] == v2
    arm_log, fb = env["out"] / "arm_log", env["out"] / "feedback"
    shadow = _until("the shadow copies in the arm log", lambda: (
        s := arm_stats(arm_log, fb, since, time.time() + 1, model=NAME)).get("canary")
        and s["canary"].requests >= 12 and s)  # fmt: skip
    assert shadow["canary"].versions == (v3,) and shadow["production"].requests >= 12
    r = cli("step", NAME)  # shadow -> live at the initial weight
    assert r.returncode == 0, r.stderr[-3000:]
    _until("both replicas live at 50%", lambda: all(
        _ready(u)["rollout"]["mode"] == "live" and _ready(u)["rollout"]["weight"] == 50.0
        for u in env["urls"]), timeout=30)  # fmt: skip
    load = _load(
        env, seconds=180, headers={"X-Debug-Delay-Ms": "400", "X-Debug-Delay-Arm": "canary"}
    )
    with Watch(reg) as watch:
        result = cli("run", NAME)
    _stop_load(load)
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-3000:])
    assert watch.productions == {v2} and not watch.violations
    tags, aliases = _model(reg)
    assert aliases["production"] == v2 and "canary" not in aliases and ROLLOUT_TAG not in tags
    event = [e for e in read_history(reg, NAME) if e.get("kind") == "rollout"][-1]
    assert event["action"] == "rollback" and event["version"] == v3, event
    assert "latency_p50" in event["checks"] and event["checks"]["latency_p50"] == "fail", event
    assert "p50 canary" in event["reason"] and "ratio" in event["reason"]
    assert event["arms"]["canary"]["p50_ms"] > 3 * event["arms"]["production"]["p50_ms"]
    assert read_state(reg, NAME).versions[v2].stage == "production"
    assert np.isfinite(event["arms"]["production"]["p50_ms"])
