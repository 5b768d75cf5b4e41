"""Reruns, kills at the promotion pipeline's stage boundaries, and two checkouts at once.

The promotion pipeline's two nodes (``register_models`` then ``promote_to_staging``) are run as
``kedro run --pipelines=promotion`` runs them (:func:`tests.registry.fault_driver.run_promotion`),
on the tests' small ONNX files against the session's real MLflow server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.registry.fault_driver import run_promotion
from tests.registry.invariants import assert_invariants
from tests.registry.test_faults import PROJECT, assert_killed, drive


def _versions(reg, name):
    return sorted(
        ((mv.tags or {})["sensorops.variant"], (mv.tags or {})["onnx.sha256"])
        for mv in reg.client.search_model_versions(f"name='{name}'")
    )


def test_three_reruns_leave_one_version_per_artifact_and_one_staging_holder(
    reg, model_name, onnx_models
):
    good, noisy = str(onnx_models["good"]), str(onnx_models["noisy"])
    reports = [run_promotion(reg, model_name, good, noisy) for _ in range(3)]
    assert [r["status"] for r in reports] == ["staged", "already_staging", "already_staging"]
    assert {r["version"] for r in reports} == {reports[0]["version"]}
    assert [v["reused"] for v in reports[2]["registered"]] == [True, True]
    assert len(_versions(reg, model_name)) == 2  # fp32 + int8, once each
    state = assert_invariants(reg, model_name)["state"]
    assert state.in_stage("staging") == [reports[0]["version"]]

    # a retrain gives a new fp32 artifact: one new version, which takes staging from the old one
    retrained = run_promotion(reg, model_name, str(onnx_models["good2"]), noisy)
    assert retrained["status"] == "staged" and retrained["archived"] == [reports[0]["version"]]
    assert len(_versions(reg, model_name)) == 3
    state = assert_invariants(reg, model_name)["state"]
    assert state.in_stage("staging") == [retrained["version"]]


@pytest.mark.parametrize(
    ("point", "status"),
    [("promotion.after_register", "staged"), ("promotion.after_stage", "already_staging")],
)
def test_kill_at_promotion_stage_boundaries_then_rerun(
    point, status, reg, mlflow_server, model_name, onnx_models
):
    good, noisy = str(onnx_models["good"]), str(onnx_models["noisy"])
    assert_killed(drive(mlflow_server, model_name, "pipeline", good, noisy, kill_at=point))
    report = run_promotion(reg, model_name, good, noisy)  # the next `kedro run`
    assert report["status"] == status
    assert all(v["reused"] for v in report["registered"])
    assert len(_versions(reg, model_name)) == 2
    assert_invariants(reg, model_name)


def test_two_checkouts_at_once_register_each_artifact_once(
    reg, mlflow_server, model_name, onnx_models
):
    """Issue case 2 across checkouts: the registry lease serialises them; identical artifacts on
    identical data become one version, and staging has one holder."""
    good, noisy = str(onnx_models["good"]), str(onnx_models["noisy"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOROPS_FAULT_")}
    args = [sys.executable, "-m", "tests.registry.fault_driver", mlflow_server, model_name]
    procs = [
        subprocess.Popen(
            [*args, "pipeline", good, noisy],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    statuses = sorted(json.loads(o[0].strip().splitlines()[-1])["status"] for o in outs)
    assert statuses == ["already_staging", "staged"], statuses
    assert len(_versions(reg, model_name)) == 2
    assert_invariants(reg, model_name)
