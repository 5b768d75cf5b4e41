"""The retraining set (leak-free split by request, lineage) and one run of the whole chain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sensorops import timeseries as ts
from sensorops.monitoring import RetrainingError, read_window
from sensorops.monitoring import retraining as rt
from sensorops.monitoring.config import RetrainingConfig
from tests.kedro_project import run_kedro

CHANNELS = ["vibration", "temperature", "current"]
RETRAIN_NAME = "sensorops-retrain-test"  # its own registered model: other tests' aliases stay put


def test_log_rows_join_only_labelled_quality_passing_records_split_by_request(
    tmp_path: Path, write_log: Any
) -> None:
    written = write_log(tmp_path / "a", mode="none", n=60, seed=12, raw=True, prefix="ok")
    stuck = write_log(tmp_path / "a", mode="stuck", n=10, seed=13, raw=True, prefix="stuck")
    assert stuck["dir"] == written["dir"]
    window = read_window(written["dir"])
    rows, counts = rt.log_training_rows(window, CHANNELS, RetrainingConfig())
    assert counts["labelled"] == 70 and counts["no_raw_input"] == 0
    assert counts["failed_checks"] >= 10  # the stuck-channel records never join
    ids = rows.groupby("series_id")["split"].first()
    assert not any("stuck-" in s for s in ids.index)
    assert counts["joined"] == len(ids) and all(s.startswith("log:ok-") for s in ids.index)
    assert set(ids) <= {"train", "val", "test"} and (ids == "test").any() and (ids == "train").any()
    # the split is a function of the request id alone: the same request lands in the same split
    again, _ = rt.log_training_rows(window, CHANNELS, RetrainingConfig())
    assert again.groupby("series_id")["split"].first().equals(ids)
    first = rows[rows["series_id"] == ids.index[0]]
    assert list(first["t"]) == list(range(len(first)))
    assert first["label"].iloc[0] in written["labels"]


def test_unlabelled_or_summary_only_records_do_not_join(tmp_path: Path, write_log: Any) -> None:
    no_raw = write_log(tmp_path / "b", n=12, seed=14, raw=False)
    rows, counts = rt.log_training_rows(read_window(no_raw["dir"]), CHANNELS, RetrainingConfig())
    assert rows.empty and counts["no_raw_input"] == 12
    unlabelled = write_log(tmp_path / "c", n=12, seed=14, raw=True, labelled=False)
    rows, counts = rt.log_training_rows(
        read_window(unlabelled["dir"]), CHANNELS, RetrainingConfig()
    )
    assert rows.empty and counts["labelled"] == 0


def test_combined_set_keeps_the_original_split_and_records_lineage(
    tmp_path: Path, write_log: Any, mon_project: dict[str, Any]
) -> None:
    written = write_log(tmp_path, n=30, seed=15, raw=True, prefix="r")
    window = read_window(written["dir"])
    rows, counts = rt.log_training_rows(window, CHANNELS, RetrainingConfig())
    original = ts.load_source(ts.SourceConfig(kind="synthetic", synthetic=ts.SyntheticConfig(
        n_series=48, n_channels=3, length=40)))  # fmt: skip
    split = ts.SplitConfig()
    combined = rt.combine(original, rows, split)
    as_ingestion = ts.assign_splits(original, split).groupby("series_id")["split"].first()
    got = combined.groupby("series_id")["split"].first()
    assert got.loc[as_ingestion.index].equals(as_ingestion)  # original series: same split as before
    assert len(got) == 48 + counts["joined"]
    record = rt.lineage(window, counts, combined, {"decision": "forced"})
    tags = rt.lineage_tags(record)
    assert tags["retraining.window.digest"] == window.digest
    assert tags["retraining.window.since"] == window.date_range()[0]
    assert tags["retraining.window.n_records"] == "30"
    assert window.files[0].sha256[:12] in tags["retraining.window.files"]
    assert sum(record["log_series_per_split"].values()) == counts["joined"]
    with pytest.raises(RetrainingError, match="collide"):
        rt.combine(combined, rows, split)


def test_trigger_needs_a_retrain_decision_or_force(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with pytest.raises(RetrainingError, match="no monitoring report"):
        rt.check_trigger(report, force=False)
    report.write_text(json.dumps({"decision": "ok", "version": "3", "window": {"n_records": 9}}))
    with pytest.raises(RetrainingError, match=r"says 'ok' \(v3, 9 records\)"):
        rt.check_trigger(report, force=False)
    assert rt.check_trigger(report, force=True)["decision"] == "forced"
    report.write_text(json.dumps({"decision": "retrain", "reasons": ["x"]}))
    assert rt.check_trigger(report, force=False)["decision"] == "retrain"


def _accuracy(model: Any, values: list[np.ndarray], labels: list[str]) -> float:
    proba, _ = model.predict_proba_series(values)
    classes = list(model.state.classes)
    return float(
        np.mean([classes[int(i)] == y for i, y in zip(proba.argmax(1), labels, strict=True)])
    )


@pytest.mark.slow
def test_retraining_chain_registers_a_better_candidate_with_lineage(
    mon_project: dict[str, Any], mon_reference: Any, mon_model: Any, write_log: Any,
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    from tests.kedro_project import copy_project

    # its own project copy: the chain rewrites the data layers the other monitoring tests read
    source = mon_project["project"]
    project = copy_project(source, tmp_path_factory.mktemp("retraining") / "project")
    out = project / "data" / "07_model_output"
    written = write_log(out, mode="gain", n=100, seed=16, raw=True, prefix="drift", gain=2.0,
                        offset=1.5)  # fmt: skip
    window = read_window(written["dir"])
    result = run_kedro(
        project,
        ["run", "--env=test", "--pipeline=retraining", "--params",
         f"monitoring.force_retrain=true,promotion.model_name={RETRAIN_NAME},"
         "promotion.register_compression_variants=false,training.trainer.loop.epochs=40,"
         "ingestion.ablation.enabled=false"],
        mlflow_server, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout[-5000:], result.stderr[-5000:])
    summary = json.loads((project / "data/08_reporting/monitoring/retraining.json").read_text())
    assert summary["versions"], summary
    cand = summary["versions"][0]
    client = mon_project["client"]
    mv = client.get_model_version(RETRAIN_NAME, cand["version"])
    assert mv.tags["retraining.window.digest"] == window.digest
    assert mv.tags["retraining.window.since"] == window.date_range()[0]
    assert mv.tags["retraining.window.until"] == window.date_range()[1]
    assert mv.tags["retraining.trigger"] == "forced"
    assert int(mv.tags["retraining.log_records_joined"]) >= 90
    lineage = json.loads(
        (project / "data/08_reporting/monitoring/retraining_lineage.json").read_text()
    )
    # the drifted window's held-out part (log series in the test split) scores both models
    test_ids = {s.split(":")[1] for s, sp in lineage_splits(project).items() if sp == "test"}
    assert lineage["log_series_per_split"].get("test", 0) == len(test_ids) > 0
    idx = [i for i, r in enumerate(written["records"]) if r["request_id"] in test_ids]
    from sensorops.monitoring import publish

    candidate = publish.load_model(RETRAIN_NAME, cand["version"], tracking_uri=mlflow_server,
                                   cache=project / "data" / "06_models" / "cand")  # fmt: skip
    values = [np.asarray(written["records"][i]["input_values"], dtype=float) for i in idx]
    labels = [written["labels"][i] for i in idx]
    prod_acc = _accuracy(mon_model, values, labels)
    cand_acc = _accuracy(candidate, values, labels)
    assert cand_acc > prod_acc, (cand_acc, prod_acc, len(idx))
    ref = (
        project / "data/06_models/monitoring" / f"reference-{RETRAIN_NAME}-v{cand['version']}.json"
    )
    assert ref.exists()  # the candidate can be monitored as soon as it serves
    shutil.rmtree(project / "data" / "06_models" / "cand", ignore_errors=True)


def lineage_splits(project: Path) -> dict[str, str]:
    frame = pd.read_parquet(project / "data/02_intermediate/sensor_long.parquet")
    per = frame.groupby("series_id")["split"].first()
    return {str(k): str(v) for k, v in per.items() if str(k).startswith(rt.LOG_PREFIX)}
