"""Wiring and configuration of the monitoring and retraining pipelines (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorops.monitoring import (
    MonitoringConfigError,
    load_monitoring_config,
    load_retraining_config,
)


def test_pipelines_are_registered_outside_the_default(project_root: Path) -> None:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_root)
    registered = dict(pipelines)
    mon, ret, default = (
        registered["monitoring"],
        registered["retraining"],
        registered["__default__"],
    )
    assert [n.name for n in mon.nodes] == [
        "read_log_window", "version_reference", "check_window", "publish_report"]  # fmt: skip
    names = {n.name for n in ret.nodes}
    chain = {n.name for n in default.nodes} - {"load_raw_source"}
    assert {"build_retraining_set", "tag_candidates"} | chain == names  # the whole existing chain
    assert not names & {n.name for n in mon.nodes} and not {"build_retraining_set"} & {
        n.name for n in default.nodes
    }
    producers = [n.name for n in ret.nodes if "raw_sensor_long" in n.outputs]
    assert producers == ["build_retraining_set"]
    for node in [*mon.nodes, *ret.nodes]:
        assert node.name == node.func.__name__


def test_config_errors_name_the_key() -> None:
    with pytest.raises(MonitoringConfigError, match=r"monitoring\.drift\.alpah is not a known key"):
        load_monitoring_config({"drift": {"alpah": 0.05}})
    with pytest.raises(
        MonitoringConfigError, match=r"monitoring\.drift\.correction must be one of"
    ):
        load_monitoring_config({"drift": {"correction": "holm"}})
    with pytest.raises(MonitoringConfigError, match="since"):
        load_monitoring_config({"window": {"since": "2026-12-05T00:00:00", "until": "2026-12-04"}})
    with pytest.raises(MonitoringConfigError, match=r"retraining\.test_fraction"):
        load_retraining_config({"test_fraction": 1.5})
    assert load_monitoring_config({"version": 3}).version == "3"  # --params monitoring.version=3
