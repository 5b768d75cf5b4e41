"""The log reader: window selection, clear errors naming the file, and a writer killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sensorops.monitoring import LogError, read_window
from sensorops.monitoring.config import WindowConfig
from sensorops.monitoring.log_reader import list_parts
from sensorops.serving.prediction_log import PartitionedLog


def test_window_selection_and_lineage(tmp_path: Path, write_log: Any) -> None:
    written = write_log(tmp_path, n=30, seed=7, prefix="a")
    full = read_window(written["dir"])
    assert full.n == 30 and full.n_channels == 3 and full.labelled.shape[0] == 30
    assert full.records["label"].tolist() == written["labels"]
    since = pd.Timestamp("2026-12-04T10:00:10Z").to_pydatetime()
    until = pd.Timestamp("2026-12-04T10:00:20Z").to_pydatetime()
    part = read_window(written["dir"], WindowConfig(since=since, until=until))
    assert part.n == 10 and part.records["request_id"].iloc[0] == "a-000010"
    assert read_window(written["dir"], WindowConfig(last_n=5)).records["request_id"].tolist() == [
        f"a-{i:06d}" for i in range(25, 30)
    ]
    assert read_window(written["dir"], WindowConfig(request_id_prefix="zz")).n == 0
    lineage = full.lineage()
    assert lineage["n_records"] == 30 and lineage["since"].startswith("2026-12-04T10:00:00")
    assert len(lineage["files"]) == 1 and len(lineage["files"][0]["sha256"]) == 64
    assert part.digest != full.digest


def _one_part(root: Path) -> Path:
    parts = list_parts(root)
    assert len(parts) == 1
    return parts[0]


def test_foreign_schema_is_named(tmp_path: Path, write_log: Any) -> None:
    written = write_log(tmp_path, n=12, seed=8)
    bad = written["dir"] / "date=2026-12-04" / "version=1" / "part-foreign.parquet"
    pd.DataFrame({"request_id": ["x"], "score": [0.3]}).to_parquet(bad)
    with pytest.raises(LogError, match=r"part-foreign\.parquet: is not a prediction-log part"):
        read_window(written["dir"])


def test_records_of_another_model_are_named(tmp_path: Path, write_log: Any) -> None:
    written = write_log(tmp_path, n=12, seed=8)
    part = _one_part(written["dir"])
    frame = pd.read_parquet(part)
    frame["model"] = "another-model"
    frame["request_id"] = "other-" + frame["request_id"]
    other = part.with_name("part-other.parquet")
    frame.to_parquet(other, index=False)
    with pytest.raises(LogError, match=r"part-other\.parquet: holds records of model"):
        read_window(written["dir"], model="sensorops-classifier")


def test_label_for_unknown_request_is_named(tmp_path: Path, write_log: Any) -> None:
    written = write_log(tmp_path, n=12, seed=8)
    fb = PartitionedLog(
        tmp_path / "feedback", flush_records=10, flush_s=3600, partition_by=("date",)
    )
    fb.append([{"request_id": "never-answered", "series_index": 0, "label": "healthy",
                "time": pd.Timestamp("2026-12-04T11:00:00").to_datetime64()}])  # fmt: skip
    fb.close()
    with pytest.raises(LogError, match=r"feedback/date=2026-12-04/part-.*: label for an unknown"):
        read_window(written["dir"])


def test_duplicated_request_is_an_error(tmp_path: Path, write_log: Any) -> None:
    written = write_log(tmp_path, n=6, seed=8, labelled=False)
    part = _one_part(written["dir"])
    pd.read_parquet(part).to_parquet(part.with_name("part-copy.parquet"), index=False)
    with pytest.raises(LogError, match="logged more than once"):
        read_window(written["dir"])


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from sensorops.serving.prediction_log import PartitionedLog
    log = PartitionedLog(sys.argv[1], flush_records=25, flush_s=0.5)
    rec = {"request_id": "", "series_index": 0, "endpoint": "predict", "model": "m",
           "version": "3", "alias": "production", "alignment_cost": 1.0,
           "input_mean": [0.0] * 6, "input_std": [1.0] * 6, "predicted": "a",
           "probabilities": [0.9, 0.1], "classes": ["a", "b"], "latency_ms": 2.0,
           "padding": "x" * 20000}
    i = 0
    while True:
        log.append([{**rec, "request_id": f"k-{i:07d}",
                     "time": np.datetime64(int(time.time() * 1e6), "us")}])
        i += 1
        print(i, flush=True)
        time.sleep(0.002)
    """
)


@pytest.mark.slow
def test_killed_writer_leaves_a_readable_log_and_loses_at_most_the_buffer(tmp_path: Path) -> None:
    root = tmp_path / "prediction_log"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    appended = 0
    while time.monotonic() < deadline and (appended < 400 or len(list_parts(root)) < 5):
        line = proc.stdout.readline()
        if not line:
            break
        appended = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    rest = proc.stdout.read().split()
    appended = int(rest[-1]) if rest else appended
    window = read_window(root)  # every finished part reads; a killed roll left only a temp file
    logged = window.n
    assert logged <= appended
    assert appended - logged <= 25, (appended, logged)  # at most flush_records lost
    ids = window.records["request_id"].tolist()
    assert ids == [f"k-{i:07d}" for i in range(logged)]  # a prefix: nothing lost in between


def _plain_records(day: str, n: int, prefix: str) -> list[dict[str, Any]]:
    start = pd.Timestamp(f"{day}T12:00:00").to_datetime64()
    return [
        {"request_id": f"{prefix}-{i}", "series_index": 0, "time": start + pd.Timedelta(seconds=i).to_timedelta64(),
         "endpoint": "predict", "model": "m", "version": "2", "alias": "production",
         "alignment_cost": 1.0, "input_mean": [0.0, 1.0], "input_std": [1.0, 1.0],
         "predicted": "a", "probabilities": [0.8, 0.2], "classes": ["a", "b"], "latency_ms": 3.0}
        for i in range(n)
    ]  # fmt: skip


def test_days_outside_the_window_are_read_for_their_keys_only(tmp_path: Path) -> None:
    root = tmp_path / "prediction_log"
    log = PartitionedLog(root, flush_records=1000, flush_s=3600)
    log.append(_plain_records("2026-12-03", 5, "old") + _plain_records("2026-12-04", 7, "new"))
    log.close()
    fb = PartitionedLog(
        tmp_path / "feedback", flush_records=100, flush_s=3600, partition_by=("date",)
    )
    fb.append([{"request_id": "old-1", "series_index": 0, "label": "b",  # a late label, old request
                "time": pd.Timestamp("2026-12-04T13:00:00").to_datetime64()}])  # fmt: skip
    fb.close()
    since = pd.Timestamp("2026-12-04T00:00:00Z").to_pydatetime()
    window = read_window(root, WindowConfig(since=since))
    assert window.n == 7 and set(window.records["request_id"].str[:3]) == {"new"}
    assert [f.path.split("/")[0] for f in window.files] == ["date=2026-12-04"]
    old = next(p for p in list_parts(root) if "date=2026-12-03" in str(p))
    old.write_bytes(old.read_bytes()[:100])  # a truncated part outside the window is still an error
    with pytest.raises(LogError, match=r"date=2026-12-03/version=2/part-.*: is not a readable"):
        read_window(root, WindowConfig(since=since))
