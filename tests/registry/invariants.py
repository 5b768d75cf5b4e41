"""The registry invariants the fault-injection tests assert after every kill + next command."""

from __future__ import annotations

import socket
from typing import Any

from sensorops.registry import Registry
from sensorops.registry.doctor import artifact_ok, diagnose, replay_history
from sensorops.registry.history import read_history
from sensorops.registry.intent import read_intent
from sensorops.registry.transitions import read_state
from sensorops.runlock import is_alive


def running_dead_runs(reg: Registry, experiment: str) -> list[str]:
    """Runs of ``experiment`` still RUNNING although their process (on this host) is gone."""
    exp = reg.client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    out = []
    for run in reg.client.search_runs(
        [exp.experiment_id], filter_string="attributes.status = 'RUNNING'"
    ):
        tags = run.data.tags
        if tags.get("sensorops.host") == socket.gethostname() and "sensorops.pid" in tags:
            if (
                is_alive(
                    tags["sensorops.pid"], tags["sensorops.host"], tags.get("sensorops.pid_start")
                )
                is False
            ):
                out.append(run.info.run_id)
    return out


def assert_invariants(
    reg: Registry, name: str, experiment: str = "sensorops-promotion"
) -> dict[str, Any]:
    """Assert the five invariants (and that ``doctor`` finds nothing); return the state for more checks."""
    assert read_intent(reg, name) is None, "an intent record is left"
    state = read_state(reg, name)
    versions = {str(mv.version): mv for mv in reg.client.search_model_versions(f"name='{name}'")}
    # 1. no version without its artifact
    missing = [v for v, mv in versions.items() if not artifact_ok(reg, mv)]
    assert not missing, f"versions without artifact: {missing}"
    # 2. no alias on a non-complete (or archived/candidate) version
    for alias, v in state.aliases.items():
        assert v in versions and versions[v].status == "READY", (
            f"@{alias} -> missing/incomplete v{v}"
        )
        assert state.versions[v].stage in ("staging", "production"), (
            f"@{alias} -> v{v} in stage {state.versions[v].stage}"
        )
    # 3. at most one holder per stage, and it holds the alias
    for stage in ("staging", "production"):
        holders = state.in_stage(stage)
        assert len(holders) <= 1, f"{stage} held by {holders}"
        assert state.aliases.get(stage) == (holders[0] if holders else None), (
            stage,
            holders,
            state.aliases,
        )
    assert state.aliases.get("champion") == state.aliases.get("production")
    # 4. the history equals the alias/stage state
    replayed = replay_history(read_history(reg, name))
    assert {v: replayed.get(v) for v in state.versions} == {
        v: s.stage for v, s in state.versions.items()
    }, f"history replays to {replayed}"
    # 5. no RUNNING run of a dead process
    dead = running_dead_runs(reg, experiment)
    assert not dead, f"runs of dead processes still RUNNING: {dead}"
    _, problems = diagnose(reg, name)
    assert not problems, [p.message for p in problems]
    return {"state": state, "history": read_history(reg, name)}
