"""``sensorops models ...`` against the real server: tables, lineage, exit codes, concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sensorops.cli import main
from sensorops.model_input import save_model_input
from sensorops.registry import (
    PromotionConfig,
    VariantSpec,
    consistency_problems,
    promote,
    read_history,
    read_state,
    register_variants,
)
from tests.registry.registry_helpers import FAST_LOCK, GOOD_TAGS

SENSOROPS = str(Path(sys.executable).parent / "sensorops")


@pytest.fixture(scope="module")
def deployed(reg, mi, onnx_models, tmp_path_factory):
    """A model with v1 (good) in production, v3 (good2) in staging, v2 (bad) archived (it was staged,
    then replaced in staging by v3: one holder per stage); plus its npz."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    cfg = PromotionConfig(lock=FAST_LOCK)
    specs = [VariantSpec(m, str(onnx_models[m])) for m in ("good", "bad", "good2")]
    v1, v2, v3 = (
        rv.version for rv in register_variants(specs, mi, name, GOOD_TAGS, reg=reg, config=cfg)
    )
    wide = cfg.model_copy(
        update={"gates": cfg.gates.model_copy(update={"staging_margin_points": 100.0})}
    )
    promote(reg, name, v1, "staging", config=wide, mi=mi)
    promote(reg, name, v1, "production", config=cfg, mi=mi)
    for v in (v2, v3):
        promote(reg, name, v, "staging", config=wide, mi=mi)
    npz = tmp_path_factory.mktemp("mi") / "model_input.npz"
    save_model_input(mi, npz)
    return {"name": name, "v1": v1, "v2": v2, "v3": v3, "npz": str(npz)}


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_and_show_lineage_chain(mlflow_server, deployed, capsys, mi):
    name = deployed["name"]
    code, out, _ = run_cli(capsys, "models", "list", "--tracking-uri", mlflow_server)
    assert code == 0 and name in out
    code, out, _ = run_cli(capsys, "models", "list", name, "--tracking-uri", mlflow_server)
    assert (
        code == 0
        and "@champion @production" in out
        and "Production" in out
        and "warning" not in out
    )
    code, out, _ = run_cli(
        capsys, "models", "list", name, "--json", "--tracking-uri", mlflow_server
    )
    rows = json.loads(out)
    assert {r["version"]: r["stage"] for r in rows["versions"]} == {
        deployed["v1"]: "production",
        deployed["v2"]: "archived",
        deployed["v3"]: "staging",
    }
    assert rows["problems"] == []

    code, out, _ = run_cli(
        capsys, "models", "show", f"{name}@production", "--tracking-uri", mlflow_server
    )
    assert code == 0
    for needle in (
        "MLflow run ",
        "kedro run id",
        "test_digest",
        "data quality",
        "raw.tier1",
        "[production]",
        "training child run",
        "git commit",
        "parity",
    ):
        assert needle in out, needle
    info = json.loads(
        run_cli(
            capsys, "models", "show", f"{name}@champion", "--json", "--tracking-uri", mlflow_server
        )[1]
    )
    assert info["version"]["version"] == deployed["v1"] and info["version"]["aliases"] == [
        "@champion",
        "@production",
    ]


def test_refused_promotion_exits_1_and_names_gate(mlflow_server, deployed, capsys, reg):
    name = deployed["name"]
    before = read_state(reg, name)
    code, _, err = run_cli(
        capsys, "models", "promote", name, deployed["v2"], "--to", "staging",
        "--model-input", deployed["npz"], "--tracking-uri", mlflow_server,
    )  # fmt: skip
    assert code == 1
    assert (
        "refused by gate 'no_regression'" in err
        and "drop" in err
        and "margin of 2.00 points" in err
    )
    assert read_state(reg, name) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "no-such-model@production"], "registered model 'no-such-model' does not exist"),
        (["show", "{name}@nope"], "alias @nope of registered model"),
        (["show", "{name}/99"], "version 99 of registered model"),
        (["history", "no-such-model"], "registered model 'no-such-model' does not exist"),
        (["promote", "{name}", "99", "--to", "staging"], "version 99 of registered model"),
        (["rollback", "no-such-model"], "registered model 'no-such-model' does not exist"),
    ],
)
def test_unknown_model_version_alias_exit_2(mlflow_server, deployed, capsys, args, needle):
    args = [a.format(name=deployed["name"]) for a in args]
    code, _, err = run_cli(capsys, "models", *args, "--tracking-uri", mlflow_server)
    assert code == 2 and needle.format(name=deployed["name"]) in err


def test_history_table(mlflow_server, deployed, capsys):
    code, out, _ = run_cli(
        capsys, "models", "history", deployed["name"], "--tracking-uri", mlflow_server
    )
    assert code == 0 and "register" in out and "production" in out and "promote" in out
    events = json.loads(
        run_cli(
            capsys, "models", "history", deployed["name"], "--json", "--tracking-uri", mlflow_server
        )[1]
    )
    assert [e["to"] for e in events][-3:] == ["production", "staging", "staging"]
    assert events[-1]["replaced"] == [deployed["v2"]]  # v3 took staging from v2


def test_concurrent_promotions_leave_one_holder_per_stage(mlflow_server, deployed, reg, tmp_path):
    """Two CLI processes at once: v3 staging -> production and v2 archived -> staging; the lease
    serialises them in either order, and each stage ends with one holder."""
    name = deployed["name"]
    common = ["--model-input", deployed["npz"], "--tracking-uri", mlflow_server, "--json"]
    moves = ((deployed["v3"], "production"), (deployed["v2"], "staging"))
    procs = [
        subprocess.Popen(
            [
                SENSOROPS,
                "models",
                "promote",
                name,
                v,
                "--to",
                to,
                "--margin-points",
                "100",
                *common,
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v, to in moves
    ]
    try:
        results = [p.communicate(timeout=180) for p in procs]
    finally:  # a timeout (or any error) must not leave promote processes running
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    codes = [p.returncode for p in procs]
    state = read_state(reg, name)
    assert consistency_problems(state) == []
    if codes == [1, 0]:
        # the lease let v2 -> staging go first: staging archived v3 (one holder per stage), so
        # v3 -> production is refused by the stage-order gate and production is unchanged
        assert "refused by gate 'stage_order'" in results[0][1] and "'archived'" in results[0][1]
        assert state.in_stage("staging") == [deployed["v2"]] == [state.aliases["staging"]]
        assert state.production == deployed["v1"] and state.in_stage("production") == [
            deployed["v1"]
        ]
        assert state.versions[deployed["v3"]].stage == "archived"
        assert "sensorops.lock" not in reg.client.get_registered_model(name).tags
        return
    assert codes == [0, 0], results
    assert state.in_stage("production") == [deployed["v3"]] == [state.production]
    assert state.in_stage("staging") == [deployed["v2"]] == [state.aliases["staging"]]
    assert [
        v.version for v in state.versions.values() if v.legacy_stage == "Production"
    ] == state.in_stage("production")
    prod_events = [e for e in read_history(reg, name) if e["to"] == "production"]
    assert len(prod_events) == 2 and prod_events[1]["replaced"] == [deployed["v1"]]
    assert state.versions[deployed["v1"]].stage == "archived"
    assert "sensorops.lock" not in reg.client.get_registered_model(name).tags
    # rollback from the CLI restores the version that was replaced last
    out = subprocess.run(
        [SENSOROPS, "models", "rollback", name, "--tracking-uri", mlflow_server, "--reason", "test"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert read_state(reg, name).production == deployed["v1"]
    assert consistency_problems(read_state(reg, name)) == []


def test_promote_from_a_subfolder_uses_project_defaults_and_env(
    mlflow_server, reg, mi, register, model_name, config, tmp_path, monkeypatch, capsys
):
    """Default --model-input and parameters come from the project root; --env picks conf/<ENV>."""
    good, bad = (rv.version for rv in register(model_name, "good", "bad"))
    promote(reg, model_name, good, "staging", config=config, mi=mi)
    promote(reg, model_name, good, "production", config=config, mi=mi)
    project = tmp_path / "project"
    (project / "data/05_model_input").mkdir(parents=True)
    save_model_input(mi, project / "data/05_model_input/model_input.npz")
    (project / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "demo"\n')
    for env, margin in (("base", 0.5), ("local", 100.0)):
        (project / "conf" / env).mkdir(parents=True)
        (project / "conf" / env / "parameters_promotion.yml").write_text(
            f"promotion:\n  gates:\n    staging_margin_points: {margin}\n"
            "  lock:\n    settle_s: 0.4\n    max_write_gap_s: 0.3\n"
        )
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    promote_bad = ["models", "promote", model_name, bad, "--to", "staging", "--tracking-uri", mlflow_server]  # fmt: skip
    code, _, err = run_cli(capsys, *promote_bad, "--env", "base")
    assert code == 1, err
    assert "refused by gate 'no_regression'" in err and "margin of 0.50 points" in err
    code, out, err = run_cli(capsys, *promote_bad, "--json")  # default env: local (margin 100)
    assert code == 0, err
    assert json.loads(out)["to_stage"] == "staging"
    assert read_state(reg, model_name).versions[bad].stage == "staging"
