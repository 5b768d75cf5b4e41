"""Lineage: kedro-viz builds headless with every pipeline, node and layer; Airflow DAGs generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project

from tests.kedro_project import copy_project, run_kedro

EXPECTED_PIPELINES = ("ingestion", "data_quality", "training", "compression", "export", "promotion")


@pytest.fixture(scope="module")
def registered(project_root: Path) -> dict:
    bootstrap_project(project_root)
    return dict(pipelines)


def test_every_workflow_pipeline_is_registered_and_default_is_their_union(registered: dict) -> None:
    for name in EXPECTED_PIPELINES:
        assert name in registered, f"pipeline {name!r} is not registered"
    union = set().union(*(set(n.name for n in registered[p].nodes) for p in EXPECTED_PIPELINES))
    assert {n.name for n in registered["__default__"].nodes} == union


def test_nodes_are_named_after_functions_and_tagged_with_their_pipeline(registered: dict) -> None:
    for name in EXPECTED_PIPELINES:
        for node in registered[name].nodes:
            assert name in node.tags, f"node {node.name!r} of {name!r} lacks the tag {name!r}"
            assert node.name == node.func.__name__, (
                f"node {node.name!r} should be named after {node.func.__name__}"
            )


def _plain(name: str) -> str:
    """A node name as kedro-viz may show it (pretty names): lower case, spaces for underscores."""
    return " ".join(name.replace("_", " ").lower().split())


@pytest.fixture(scope="module")
def viz_build(
    project_root: Path, tmp_path_factory: pytest.TempPathFactory, mlflow_server: str
) -> Path:
    project = copy_project(project_root, tmp_path_factory.mktemp("viz") / "project")
    result = run_kedro(project, ["viz", "build"], mlflow_server, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project / "build"


def test_viz_build_lists_every_pipeline_node_and_layer(viz_build: Path, registered: dict) -> None:
    main = json.loads((viz_build / "api" / "main").read_text())
    listed = {p["id"] for p in main["pipelines"]}
    assert set(EXPECTED_PIPELINES) | {"__default__"} <= listed
    for name in EXPECTED_PIPELINES:
        data = json.loads((viz_build / "api" / "pipelines" / name).read_text())
        task_names = {_plain(n["name"]) for n in data["nodes"] if n["type"] == "task"}
        expected = {_plain(n.name) for n in registered[name].nodes}
        # kedro-viz may show pretty names ("Load raw source"): compare the names, not the counts
        assert task_names == expected, (
            f"{name}: viz lacks {sorted(expected - task_names)}, has extra {sorted(task_names - expected)}"
        )
    data_nodes = [
        n for n in main["nodes"] if n["type"] == "data" and not n["name"].startswith("params:")
    ]
    assert data_nodes
    no_layer = [n["name"] for n in data_nodes if not n.get("layer")]
    assert not no_layer, f"datasets without a kedro-viz layer: {no_layer}"


def test_airflow_dag_is_generated_for_the_default_pipeline(
    project_root: Path, tmp_path: Path, mlflow_server: str, registered: dict
) -> None:
    project = copy_project(project_root, tmp_path / "project")
    result = run_kedro(
        project,
        ["airflow", "create", "--pipelines=__default__", "--group-by=memory", "--target-dir=dags"],
        mlflow_server,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    dag = next((project / "dags").glob("*.py")).read_text()
    for node in registered["__default__"].nodes:
        assert node.name in dag, f"node {node.name} missing from the generated DAG"
