"""The walkthrough notebook, executed top to bottom so that it cannot rot.

It runs with nbclient in a real kernel (the venv's ipykernel) against the finished
``kedro run --env=test`` of the session-scoped ``e2e`` fixture and the real MLflow test server, from
``<project>/notebooks/`` with no ``SENSOROPS_PROJECT`` set, so the defaults a user gets are the ones
tested. Its last cell writes ``data/08_reporting/notebook_summary.json``, which the tests compare
with what the pipelines and the registry hold.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager
from mlflow import MlflowClient
from nbclient import NotebookClient

from sensorops.model_input import load_model_input
from tests.conftest import PROJECT_ROOT
from tests.kedro_project import kedro_env

NOTEBOOK = PROJECT_ROOT / "notebooks" / "sensorops_walkthrough.ipynb"


def _kernel_manager(tmp: Path) -> KernelManager:
    """A manager for the venv's ``python3`` kernel; an explicit spec on ``sys.executable`` if absent."""
    specs = KernelSpecManager()
    try:
        spec = specs.get_kernel_spec("python3")
        in_venv = Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    except NoSuchKernel:
        in_venv = False
    if in_venv:
        return KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    kernel_dir = tmp / "kernels" / "sensorops-venv"
    kernel_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": "sensorops venv", "language": "python"}
    (kernel_dir / "kernel.json").write_text(json.dumps(spec_json))
    explicit = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name="sensorops-venv", kernel_spec_manager=explicit)


@pytest.fixture(scope="module")
def executed(
    e2e: dict[str, Any],
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Execute the notebook from ``<e2e project>/notebooks``; return the run notebook and its summary."""
    project: Path = e2e["project"]
    workdir = project / "notebooks"
    workdir.mkdir(exist_ok=True)
    target = workdir / NOTEBOOK.name
    shutil.copy2(NOTEBOOK, target)
    summary_path = project / "data" / "08_reporting" / "notebook_summary.json"
    summary_path.unlink(missing_ok=True)

    env = kedro_env(mlflow_server)
    for name in ("SENSOROPS_PROJECT", "SENSOROPS_ENV", "SENSOROPS_NOTEBOOK_SUMMARY"):
        env.pop(name, None)
    nb = nbformat.read(target, as_version=4)
    client = NotebookClient(
        nb,
        km=_kernel_manager(tmp_path_factory.mktemp("kernelspec")),
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute(env=env)
    finally:
        nbformat.write(nb, workdir / "executed.ipynb")  # kept next to the project for debugging
    assert summary_path.is_file(), f"the notebook's last cell did not write {summary_path}"
    return {"nb": nb, "summary": json.loads(summary_path.read_text()), "project": project}


def test_notebook_is_committed_with_outputs_cleared() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"code cells {dirty} carry outputs; clear them before committing"


def test_notebook_ran_in_the_venv_against_the_default_project(executed: dict[str, Any]) -> None:
    summary = executed["summary"]
    assert Path(summary["project"]) == executed["project"].resolve()
    assert summary["python_prefix"] == sys.prefix


def test_notebook_plots_raw_and_aligned_series_for_every_class(executed: dict[str, Any]) -> None:
    mi = load_model_input(executed["project"] / "data" / "05_model_input" / "model_input.npz")
    summary = executed["summary"]
    assert summary["n_classes"] == len(mi.classes) >= 2
    assert summary["n_classes_plotted"] == len(mi.classes)
    images = [
        o
        for c in executed["nb"].cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "display_data" and "image/png" in o.get("data", {})
    ]
    assert images, "no figure was rendered"


def test_notebook_reads_the_reports_of_the_run(executed: dict[str, Any]) -> None:
    reporting = executed["project"] / "data" / "08_reporting"
    summary = executed["summary"]
    dq = json.loads((reporting / "dq_summary.json").read_text())
    comparison = json.loads((reporting / "compression_comparison.json").read_text())
    evaluation = json.loads((reporting / "evaluation.json").read_text())
    assert summary["dq_passed"] is dq["passed"]
    assert summary["n_variants_compared"] == len(comparison["variants"]) > 1
    assert summary["evaluation_accuracy"] == pytest.approx(evaluation["accuracy"])


def test_staging_model_predictions_agree_with_the_pipeline(
    executed: dict[str, Any],
    mlflow_server: str,
) -> None:
    summary = executed["summary"]
    project: Path = executed["project"]
    promotion = json.loads((project / "data" / "08_reporting" / "promotion.json").read_text())
    name = promotion["model_name"]
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    staging = client.get_model_version_by_alias(name, "staging")
    assert summary["staging_version"] == str(staging.version)
    assert summary["n_registered_versions"] == len(client.search_model_versions(f"name = '{name}'"))

    mi = load_model_input(project / "data" / "05_model_input" / "model_input.npz")
    assert summary["n_test"] == len(mi.y["test"]) > 0
    # The notebook's own ONNX Runtime predictions reproduce the accuracy recorded at registration.
    assert summary["staging_accuracy"] == pytest.approx(float(staging.tags["metric.test_accuracy"]))
    assert summary["staging_accuracy"] == pytest.approx(summary["registered_accuracy"])
    # The staged fp32 export is parity-checked, so it predicts what the evaluation of the torch
    # checkpoint wrote to mo_test_predictions, series by series and probability by probability.
    assert summary["staging_variant"] == staging.tags["sensorops.variant"] == "fp32"
    assert summary["agreement_with_evaluation"] == 1.0
    assert summary["max_proba_diff"] < 1e-4
