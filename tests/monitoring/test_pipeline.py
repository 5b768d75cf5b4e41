"""``kedro run --pipeline=monitoring`` (real CLI, real MLflow server, real GE) on a written log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sensorops.monitoring.log_reader import list_parts
from tests.kedro_project import run_kedro


@pytest.fixture(scope="module")
def clean_run(mon_project: dict[str, Any], mon_reference: Any, write_log: Any,
              mlflow_server: str) -> dict[str, Any]:  # fmt: skip
    project = mon_project["project"]
    out = project / "data" / "07_model_output"
    shutil.rmtree(out / "prediction_log", ignore_errors=True)
    shutil.rmtree(out / "feedback", ignore_errors=True)
    write_log(out, mode="none", n=60, seed=9, raw=True, prefix="clean")
    result = run_kedro(project, ["run", "--pipeline=monitoring"], mlflow_server, timeout=600)
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-4000:])
    return {"project": project, "result": result}


@pytest.mark.slow
def test_clean_window_is_ok_everywhere(clean_run: dict[str, Any], mon_project: dict[str, Any],
                                       mlflow_server: str) -> None:  # fmt: skip
    report_dir = clean_run["project"] / "data" / "08_reporting" / "monitoring"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["decision"] == "ok", report["reasons"]
    assert report["drifted_channels"] == [] and report["window"]["n_records"] == 60
    assert report["performance"]["n_labelled"] == 60
    assert len(report["performance"]["confusion"]) >= 2
    # the committed raw-stage suites ran on the logged raw inputs (tiers 1-3)
    ge = report["quality"]["great_expectations"]
    assert set(ge["tiers"]) == {"tier1", "tier2", "tier3"}, ge
    assert ge["tiers"]["tier2"]["success"], ge
    assert Path(ge["data_docs"]).exists()
    png = report_dir / "dashboard.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    # one run in the sensorops-monitoring experiment, tagged with the version; the version tag
    client = mon_project["client"]
    exp = client.get_experiment_by_name("sensorops-monitoring")
    runs = client.search_runs(
        [exp.experiment_id], f"tags.`window.digest` = '{report['window']['digest']}'"
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["model_version"] == mon_project["version"]
    assert runs[0].data.metrics["n_records"] == 60
    mv = client.get_model_version("sensorops-classifier", mon_project["version"])
    assert mv.tags["monitoring.decision"] == "ok"
    assert mv.tags["monitoring.run_id"] == runs[0].info.run_id


@pytest.mark.slow
def test_truncated_part_fails_naming_the_file_and_writes_nothing(
    clean_run: dict[str, Any], mlflow_server: str, tmp_path: Path
) -> None:
    project = clean_run["project"]
    report_dir = project / "data" / "08_reporting" / "monitoring"
    before = {p: p.read_bytes() for p in report_dir.rglob("*") if p.is_file()}
    log = project / "data" / "07_model_output" / "prediction_log"
    part = list_parts(log)[0]
    saved = tmp_path / "part.parquet"
    shutil.copy2(part, saved)
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    try:
        result = run_kedro(project, ["run", "--pipeline=monitoring"], mlflow_server, timeout=600)
    finally:
        shutil.copy2(saved, part)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert part.name in text and "not a readable Parquet file" in text, text[-3000:]
    after = {p: p.read_bytes() for p in report_dir.rglob("*") if p.is_file()}
    assert after == before  # no report, dashboard or run record was written
