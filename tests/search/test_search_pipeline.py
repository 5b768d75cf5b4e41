"""``kedro run --pipeline=search --env=test`` for real: 4 trials (2 pruned by construction), killed
mid-study with SIGKILL, then rerun: it resumes from the sqlite storage and runs only the rest.

One project copy and two `kedro` processes serve every assertion (each dynamo export of a
completed trial costs seconds; only the two completed trials export).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from sensorops.model_input import model_input_digests, save_model_input
from tests.conftest import experiment_runs, kill_process_tree, use_experiment
from tests.kedro_project import copy_project, kedro_env, run_kedro
from tests.training.conftest import make_model_input

pytestmark = pytest.mark.slow
STUDY = "sensorops-search"


def _trials(db: Path) -> list[Any]:
    """Every trial, through Optuna (only once the writer is dead or done: opening an
    ``RDBStorage`` creates the schema, which races a writer that is creating it too)."""
    import optuna

    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}")
    return study.get_trials(deepcopy=False)


def _poll_states(db: Path) -> list[tuple[str, bool]]:
    """``(state, started)`` per trial while the writer runs: a read-only sqlite query, which
    never writes. A trial counts as started once it has its first heartbeat (Optuna fails a dead
    trial only if it has one) and its ``pruning_trial`` attribute (set once every parameter is
    suggested: the retry must repeat them)."""
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            rows = con.execute(
                "SELECT t.state,"
                " EXISTS (SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)"
                " AND EXISTS (SELECT 1 FROM trial_user_attributes u"
                " WHERE u.trial_id = t.trial_id AND u.key = 'pruning_trial')"
                " FROM trials t JOIN studies s ON t.study_id = s.study_id"
                " WHERE s.study_name = ?",
                (STUDY,),
            )
            return [(state, bool(started)) for state, started in rows]
    except sqlite3.OperationalError:  # no schema yet, or the writer holds the lock
        return []


@pytest.fixture(scope="module")
def search_run(
    project_root: Path, tmp_path_factory: pytest.TempPathFactory, mlflow_server: str
) -> dict[str, Any]:
    project = copy_project(project_root, tmp_path_factory.mktemp("search") / "project")
    experiment = f"search-{uuid.uuid4().hex[:8]}"
    use_experiment(project, experiment)
    mi = make_model_input()
    save_model_input(mi, project / "data/05_model_input/model_input.npz")
    dq = {
        "passed": True,
        "warnings": [],
        "stages": {},
        "model_input_digests": model_input_digests(mi),
    }
    (project / "data/08_reporting/dq_summary.json").write_text(json.dumps(dq))
    db = project / "optuna.db"
    kedro = Path(sys.executable).with_name("kedro")
    log = open(project / "first_run.log", "w")
    proc = subprocess.Popen(
        [str(kedro), "run", "--pipeline=search", "--env=test"],
        cwd=project, env=kedro_env(mlflow_server), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    killed_at: list[Any] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            states = _poll_states(db)
            finished = [s for s, _ in states if s in ("COMPLETE", "PRUNED", "FAIL")]
            if len(finished) >= 2 and ("RUNNING", True) in states:
                killed_at = states
                break
            time.sleep(0.2)
    finally:
        kill_process_tree(proc)  # SIGKILL: no cleanup, the running trial stays RUNNING
        log.close()
    assert killed_at, (proc.returncode, (project / "first_run.log").read_text()[-4000:])
    before = {t.number: t.state.name for t in _trials(db)}
    time.sleep(2.5)  # the dead trial's heartbeat is now older than grace_period_s (2 s)
    result = run_kedro(project, ["run", "--pipeline=search", "--env=test"], mlflow_server, 600)
    assert result.returncode == 0, (result.stdout[-6000:], result.stderr[-6000:])
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    return {"project": project, "before": before, "after": _trials(db), "client": client,
            "runs": experiment_runs(client, experiment), "result": result}  # fmt: skip


def test_resume_runs_only_the_remaining_trials(search_run: dict[str, Any]) -> None:
    before, after = search_run["before"], search_run["after"]
    finished_before = {n for n, s in before.items() if s in ("COMPLETE", "PRUNED")}
    assert len(finished_before) == 2 and list(before.values()).count("RUNNING") == 1, before
    states = {t.number: t.state.name for t in after}
    # what finished before the kill is untouched; the killed trial is failed, not re-run in place
    assert all(states[n] == before[n] for n in finished_before)
    killed = next(n for n, s in before.items() if s == "RUNNING")
    assert states[killed] == "FAIL"
    finished = [t for t in after if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4  # the budget, not 4 more
    assert len(after) == 5  # 2 before the kill + the killed one + its retry + the last one
    import warnings

    from optuna.storages import RetryFailedTrialCallback

    warnings.simplefilter("ignore")  # retried_trial_number is "experimental" since optuna 2.8
    retry = next(t for t in after if RetryFailedTrialCallback.retried_trial_number(t) == killed)
    assert retry.params == next(t for t in after if t.number == killed).params
    summary = json.loads(
        (search_run["project"] / "data/08_reporting/search/search_summary.json").read_text()
    )
    done = ("COMPLETE", "PRUNED")
    ran_after_kill = [
        t.number for t in after if t.state.name in done and before.get(t.number) not in done
    ]
    assert sorted(summary["trials_run_now"]) == sorted(ran_after_kill) and len(ran_after_kill) == 2


def test_two_pruned_by_construction_two_complete(search_run: dict[str, Any]) -> None:
    finished = [t for t in search_run["after"] if t.state.is_finished() and t.state.name != "FAIL"]
    by_state: dict[str, list[Any]] = {}
    for t in finished:
        by_state.setdefault(t.state.name, []).append(t)
    assert len(by_state["COMPLETE"]) == 2 and len(by_state["PRUNED"]) == 2
    assert all(t.params["lr"] == 1e-6 for t in by_state["PRUNED"])
    for t in by_state["PRUNED"]:
        assert t.user_attrs["pruned_at_step"] < 20  # stopped before its step budget
        assert t.user_attrs["final_step"] == t.user_attrs["pruned_at_step"]
    for t in by_state["COMPLETE"]:
        accuracy, latency, params = t.values
        assert 0.0 <= accuracy <= 1.0 and latency > 0 and params > 100
        assert t.user_attrs["final_step"] == 20


def test_every_trial_is_a_nested_mlflow_run(search_run: dict[str, Any]) -> None:
    runs = search_run["runs"]
    # the SIGKILLed kedro run and its trial's training run were closed by the rerun (KILLED)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert any(r.info.status == "KILLED" and "search.trial_number" not in r.data.tags for r in runs)
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert len(parents) == 2  # the killed kedro run and the resumed one
    trial_runs = [r for r in runs if "search.trial_number" in r.data.tags]
    for t in search_run["after"]:
        if t.state.name in ("COMPLETE", "PRUNED"):
            run = next(r for r in trial_runs if r.info.run_id == t.user_attrs["mlflow_run_id"])
            assert run.data.tags["mlflow.parentRunId"] in parents
            assert run.data.tags["search.state"] == t.state.name
            assert run.data.params["search.architecture"] == t.params["architecture"]
            assert "val_loss" in run.data.metrics  # the curve the trainer logged
            if t.state.name == "COMPLETE":
                assert run.data.metrics["search.val_accuracy"] == t.values[0]
                assert run.data.metrics["search.latency_p50_ms"] == t.values[1]


def test_pareto_table_png_and_chosen_parameters(search_run: dict[str, Any]) -> None:
    project = search_run["project"]
    front = pd.read_csv(project / "data/08_reporting/search/pareto_front.csv")
    assert 1 <= len(front) <= 2 and front["chosen"].sum() == 1
    complete = [t for t in search_run["after"] if t.state.name == "COMPLETE"]
    assert set(front["number"]) <= {t.number for t in complete}
    assert (project / "data/08_reporting/search/pareto_front.png").read_bytes()[:4] == b"\x89PNG"
    trials = pd.read_csv(project / "data/08_reporting/search/trials.csv")
    assert len(trials) == 5
    chosen = front[front["chosen"]].iloc[0]
    assert chosen["val_accuracy"] == max(t.values[0] for t in complete)
    params = yaml.safe_load((project / "conf/search/parameters_training.yml").read_text())
    model = params["training"]["trainer"]["model"]
    assert model["name"] == chosen["architecture"] and model["hidden"] == chosen["hidden"]
    assert params["training"]["trainer"]["optimizer"]["lr"] == pytest.approx(chosen["lr"])
    checkout = Path(__file__).resolve().parents[2]
    for name in ("parameters_training.yml", "parameters_search.yml"):  # conf/base is never edited
        assert (project / "conf/base" / name).read_text() == (
            checkout / "conf/base" / name
        ).read_text()
    # the override is a valid training environment: the training config accepts the merged keys
    from sensorops.config_validation import check_parameters

    check_parameters(params, project / "conf" / "base", "search")
