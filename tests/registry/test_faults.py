"""Fault injection: SIGKILL a real registry subprocess at every kill point, run the next command,
then assert the registry invariants (:func:`tests.registry.invariants.assert_invariants`).

Each kill runs ``python -m tests.registry.fault_driver`` (the registry functions the promotion
pipeline and the CLI call) with ``SENSOROPS_FAULT_KILL_AT`` against the session's real MLflow
server; the next command runs in this process, as a user's next ``kedro run`` or
``sensorops models`` would. Versions for the transition tests are copies of one registered
model version (same artifact, no ONNX logging), so each case costs one subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sensorops.faultpoints import KILL_POINTS
from sensorops.registry import GateRefused, PromotionConfig, Registry, promote, rollback
from sensorops.registry.doctor import doctor
from sensorops.registry.history import read_history
from sensorops.registry.intent import read_intent
from tests.registry.invariants import assert_invariants
from tests.registry.registry_helpers import FAULT_LOCK, clone_versions


@pytest.fixture
def config() -> PromotionConfig:
    return PromotionConfig(lock=FAULT_LOCK)


PROJECT = Path(__file__).resolve().parents[2]
SENSOROPS = str(Path(sys.executable).parent / "sensorops")


def drive(
    uri: str, name: str, *args: str, kill_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOROPS_FAULT_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "2"
    if kill_at:
        env["SENSOROPS_FAULT_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "tests.registry.fault_driver", uri, name, *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def assert_killed(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == -signal.SIGKILL, (
        proc.returncode,
        proc.stdout[-2000:],
        proc.stderr[-4000:],
    )


def repairs(reg: Registry, name: str) -> list[dict]:
    return [e for e in read_history(reg, name) if e.get("kind") == "repair"]


# --- registration --------------------------------------------------------------------------

REGISTER_POINTS = [
    ("register.after_intent", "undone"),
    ("register.after_log_model#1", "undone"),
    ("register.after_version#1", "undone"),
    ("register.after_version#2", "completed"),
    ("register.after_description#2", "completed"),
    ("register.after_event#1", "completed"),
    ("register.before_clear", "completed"),
]


@pytest.mark.parametrize(("point", "action"), REGISTER_POINTS, ids=[p for p, _ in REGISTER_POINTS])
def test_kill_during_registration_then_rerun(
    point, action, reg, mlflow_server, model_name, onnx_models, register
):
    proc = drive(
        mlflow_server, model_name, "register",
        f"good={onnx_models['good']}", f"noisy={onnx_models['noisy']}", kill_at=point,
    )  # fmt: skip
    assert_killed(proc)
    assert read_intent(reg, model_name) is not None  # the kill left its intent behind

    rerun = register(model_name, "good", "noisy")  # the next `kedro run --pipelines=promotion`

    done = repairs(reg, model_name)
    assert [e["action"] for e in done] == [action], done
    assert_invariants(reg, model_name)
    versions = reg.client.search_model_versions(f"name='{model_name}'")
    by_variant = sorted((mv.tags or {})["sensorops.variant"] for mv in versions)
    assert by_variant == ["good", "noisy"]  # one version per distinct artifact
    assert {rv.reused for rv in rerun} == {action == "completed"}


# --- transitions ---------------------------------------------------------------------------


STAGING_POINTS = (
    ["transition.after_intent"]
    + [f"transition.step#{k}" for k in range(1, 9)]
    + ["transition.before_clear"]
)


@pytest.mark.parametrize("point", STAGING_POINTS)
def test_kill_during_staging_promotion_then_retry(
    point, reg, mlflow_server, model_name, template, config
):
    """v1 holds staging; staging v2 is killed; the retried promote repairs first, then refuses."""
    v1, v2 = clone_versions(reg, model_name, template, 2)
    promote(reg, model_name, v1, "staging", config=config)
    assert_killed(drive(mlflow_server, model_name, "promote", v2, "staging", kill_at=point))

    with pytest.raises(GateRefused) as info:  # the user retries the same command
        promote(reg, model_name, v2, "staging", config=config)
    assert info.value.gate == "stage_order"  # v2 already is in staging: the repair completed it

    checked = assert_invariants(reg, model_name)
    state = checked["state"]
    assert state.aliases.get("staging") == v2 and state.versions[v1].stage == "archived"
    assert [e["action"] for e in repairs(reg, model_name)] == ["completed"]
    promoted = [e for e in checked["history"] if e["kind"] == "promote" and e["version"] == v2]
    assert len(promoted) == 1 and promoted[0]["replaced"] == [v1]


PRODUCTION_POINTS = ["transition.step#5", "transition.before_clear"]


@pytest.mark.parametrize("point", PRODUCTION_POINTS)
def test_kill_during_production_promotion_then_other_commands(
    point, reg, mlflow_server, model_name, template, config, mi
):
    """Issue case 3: a kill inside `promote --to production` never wedges the registry."""
    v1, v2 = clone_versions(reg, model_name, template, 2)
    promote(reg, model_name, v1, "staging", config=config)
    promote(reg, model_name, v1, "production", config=config, mi=mi)
    promote(reg, model_name, v2, "staging", config=config, mi=mi)
    assert_killed(drive(mlflow_server, model_name, "promote", v2, "production", kill_at=point))

    result = rollback(reg, model_name, config=config)  # a different command repairs, then works
    assert result.version == v1
    state = assert_invariants(reg, model_name)["state"]
    assert state.aliases["production"] == v1 and state.versions[v2].stage == "archived"
    assert [e["action"] for e in repairs(reg, model_name)] == ["completed"]


def test_kill_during_rollback_then_doctor_cli(reg, mlflow_server, model_name, template, config, mi):
    v1, v2 = clone_versions(reg, model_name, template, 2)
    promote(reg, model_name, v1, "staging", config=config)
    promote(reg, model_name, v1, "production", config=config, mi=mi)
    promote(reg, model_name, v2, "staging", config=config, mi=mi)
    promote(reg, model_name, v2, "production", config=config, mi=mi)
    assert_killed(drive(mlflow_server, model_name, "rollback", kill_at="transition.step#4"))

    listed = subprocess.run(
        [SENSOROPS, "models", "list", model_name, "--json",
         "--tracking-uri", mlflow_server],
        cwd=PROJECT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    problems = json.loads(listed.stdout)["problems"]
    assert any("rollback" in p and "dead" in p for p in problems), problems

    fixed = subprocess.run(
        [SENSOROPS, "models", "doctor", model_name, "--fix", "--json",
         "--tracking-uri", mlflow_server],
        cwd=PROJECT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert fixed.returncode == 0, (fixed.stdout, fixed.stderr)
    report = json.loads(fixed.stdout)
    assert report["repaired"]["action"] == "completed" and report["remaining"] == []
    state = assert_invariants(reg, model_name)["state"]
    assert state.aliases["production"] == v1  # the rollback was completed


def test_kill_during_repair_is_repaired_again(reg, mlflow_server, model_name, template, config):
    v1, v2 = clone_versions(reg, model_name, template, 2)
    promote(reg, model_name, v1, "staging", config=config)
    assert_killed(
        drive(mlflow_server, model_name, "promote", v2, "staging", kill_at="transition.step#2")
    )
    assert_killed(drive(mlflow_server, model_name, "doctor", kill_at="repair.step#3"))

    report = doctor(reg, model_name, fix=True, config=config)
    assert report.repaired is not None and report.remaining == []
    assert_invariants(reg, model_name)
    assert read_history(reg, model_name)[-1]["kind"] == "repair"


def test_every_kill_point_is_exercised():
    """The table of kill points and the tests above stay in step."""
    tested = (
        {p.split("#")[0] for p, _ in REGISTER_POINTS}
        | {p.split("#")[0] for p in STAGING_POINTS + PRODUCTION_POINTS}
        | {"repair.step"}
    )
    pipeline_points = {
        "promotion.after_register",
        "promotion.after_stage",
    }  # tests/registry/test_rerun.py
    assert set(KILL_POINTS) == tested | pipeline_points


def test_unknown_kill_point_is_an_error(monkeypatch):
    from sensorops.faultpoints import kill_point

    monkeypatch.setenv("SENSOROPS_FAULT_KILL_AT", "transition.stepp")
    with pytest.raises(ValueError, match=r"unknown kill point 'transition\.stepp'"):
        kill_point("transition.step")
