"""The ``search`` pipeline: wiring, catalog entries, registered but not part of ``__default__``."""

from __future__ import annotations

from pathlib import Path

import yaml
from kedro.io import DataCatalog

from sensorops.pipelines.search import create_pipeline

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_nodes_named_tagged_and_wired() -> None:
    pipe = create_pipeline()
    assert [n.name for n in pipe.nodes] == ["run_search", "report_search"]
    for node in pipe.nodes:
        assert "search" in node.tags and node.func.__name__ == node.name
    assert pipe.inputs() == {
        "mi_model_input",
        "rpt_dq_summary",
        "params:search",
        "params:training.trainer",
    }


def test_catalog_declares_every_output_in_the_reporting_layer() -> None:
    catalog = yaml.safe_load((CONF / "base" / "catalog_search.yml").read_text())
    assert set(catalog) == create_pipeline().all_outputs()
    for name, entry in catalog.items():
        assert name.startswith("rpt_search_") and "." not in name
        assert entry["metadata"]["kedro-viz"]["layer"] == "reporting"
        path = entry.get("dataset", entry).get("filepath")
        assert path is None or path.startswith(("data/08_reporting/search/", "conf/search/"))
    DataCatalog.from_config(catalog)  # every dataset type resolves


def test_registered_but_not_in_default() -> None:
    from sensorops.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    assert {n.name for n in pipelines["search"].nodes} == {"run_search", "report_search"}
    assert not {"run_search", "report_search"} & {n.name for n in pipelines["__default__"].nodes}


def test_training_package_never_imports_optuna() -> None:
    training = Path(__file__).resolve().parents[2] / "src" / "sensorops" / "training"
    offenders = [
        p.name
        for p in training.glob("*.py")
        if "import optuna" in p.read_text() or "from optuna" in p.read_text()
    ]
    assert offenders == []
