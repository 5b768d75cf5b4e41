"""The rollout's statistics and routing rules, on numbers whose answer is known."""

from __future__ import annotations

import pandas as pd
import pytest

from sensorops.rollout.armstats import ArmStats, arm_stats
from sensorops.rollout.checks import decide, fisher_worse
from sensorops.rollout.config import ChecksConfig, RolloutConfigError, load_rollout_config
from sensorops.rollout.state import ROLLOUT_TAG, RolloutState, arms_from, bucket, half_written


def _arm(arm: str, n: int = 100, errors: int = 0, p50: float = 10.0, p99: float = 20.0,
         cpu: float = 2.0, labelled: int = 100, correct: int = 90) -> ArmStats:  # fmt: skip
    return ArmStats(arm, ("1",), n, errors, 0, p50, p99, cpu, labelled, correct)


CFG = ChecksConfig()


def test_equal_arms_step_and_promote_at_100() -> None:
    arms = {"production": _arm("production"), "canary": _arm("canary")}
    assert decide(arms, CFG, 50.0).action == "step"
    assert decide(arms, CFG, 100.0).action == "promote"


def test_too_little_data_holds() -> None:
    arms = {"production": _arm("production"), "canary": _arm("canary", n=5)}
    d = decide(arms, CFG, 5.0)
    assert d.action == "hold" and "too few requests: canary 5" in d.reason
    few_labels = {"production": _arm("production"), "canary": _arm("canary", labelled=3, correct=3)}
    d = decide(few_labels, CFG, 5.0)
    assert d.action == "hold" and "too few labels" in d.reason
    assert decide(few_labels, ChecksConfig(require_accuracy=False), 5.0).action == "step"


def test_slow_canary_rolls_back_with_its_numbers() -> None:
    arms = {"production": _arm("production"), "canary": _arm("canary", p50=310.0, p99=330.0)}
    d = decide(arms, CFG, 5.0)
    assert d.action == "rollback"
    assert "p50 canary 310.0 ms vs production 10.0 ms: ratio 31.00" in d.reason


def test_accuracy_needs_significance_not_a_raw_difference() -> None:
    # 10 points lower on 20 labels each: one-sided Fisher p = 0.33 -> no rollback
    small = {"production": _arm("production", labelled=20, correct=18),
             "canary": _arm("canary", labelled=20, correct=16, n=100)}  # fmt: skip
    assert decide(small, CFG, 5.0).action == "step"
    # 30 points lower on 50 labels each: significant -> rollback
    big = {"production": _arm("production", labelled=50, correct=45),
           "canary": _arm("canary", labelled=50, correct=30)}  # fmt: skip
    d = decide(big, CFG, 5.0)
    assert d.action == "rollback" and "accuracy canary 0.6000 (30/50)" in d.reason
    # significant but within the allowed drop -> no rollback
    huge = {"production": _arm("production", n=20000, labelled=20000, correct=19000),
            "canary": _arm("canary", n=20000, labelled=20000, correct=18800)}  # fmt: skip
    assert fisher_worse(1200, 18800, 1000, 19000) < 0.05
    assert decide(huge, CFG, 5.0).action == "step"


def test_error_rate_increase_must_be_large_and_significant() -> None:
    arms = {"production": _arm("production", n=200), "canary": _arm("canary", n=200, errors=20)}
    d = decide(arms, CFG, 5.0)
    assert d.action == "rollback" and "error rate canary 0.1000" in d.reason
    one = {"production": _arm("production", n=200), "canary": _arm("canary", n=30, errors=1)}
    assert decide(one, CFG, 5.0).action == "step"  # 1 error in 30: not significant


def test_routing_needs_tag_and_alias_to_agree() -> None:
    st = RolloutState(version="3", production="2", weight=25.0)
    tags = {ROLLOUT_TAG: st.to_json()}
    assert arms_from(tags, {"canary": "3"}).weight == 25.0
    assert arms_from(tags, {}).canary is None  # a weight without a canary routes nothing
    assert arms_from(tags, {"canary": "4"}).canary is None
    assert arms_from({}, {"canary": "3"}).canary is None
    assert half_written(tags, {"canary": "3"}) is None
    assert "without a rollout tag" in half_written({}, {"canary": "3"})
    assert "no @canary" in half_written(tags, {})


def test_sticky_bucket_is_uniform_and_salted() -> None:
    u = [bucket(f"k{i}", "salt") for i in range(4000)]
    assert all(0.0 <= x < 1.0 for x in u)
    assert 0.45 < sum(x < 0.5 for x in u) / len(u) < 0.55
    assert bucket("k1", "salt") == bucket("k1", "salt") != bucket("k1", "other")


def test_arm_stats_from_logs(tmp_path) -> None:
    t0 = pd.Timestamp("2026-01-02T00:00:00Z")
    rows = []
    for i in range(10):
        for arm, lat, status in (
            ("production", 10.0 + i, 200),
            ("canary", 50.0, 200 if i else 503),
        ):
            rows.append({"request_id": f"{arm}-{i}", "series_index": 0, "time": t0 + pd.Timedelta(seconds=i),
                         "model": "m", "version": "1" if arm == "production" else "2", "arm": arm,
                         "shadow": False, "status": status, "latency_ms": lat,
                         "cpu_s": 0.002 if status == 200 else None,
                         "predicted": "a" if status == 200 else None})  # fmt: skip
    part = tmp_path / "arm" / "date=2026-01-02"
    part.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(part / "part-1.parquet")
    fb = tmp_path / "fb" / "date=2026-01-02"
    fb.mkdir(parents=True)
    pd.DataFrame([{"request_id": f"canary-{i}", "series_index": 0, "label": "a" if i < 5 else "b",
                   "time": t0} for i in range(10)]).to_parquet(fb / "part-1.parquet")  # fmt: skip
    since = t0.timestamp()
    stats = arm_stats(tmp_path / "arm", tmp_path / "fb", since, since + 100, model="m")
    c, p = stats["canary"], stats["production"]
    assert (c.requests, c.errors, c.labelled, c.correct) == (10, 1, 9, 4)
    assert p.requests == 10 and p.errors == 0 and p.labelled == 0 and p.p50_ms == 14.5
    assert c.cpu_ms_per_series == pytest.approx(2.0)
    later = arm_stats(tmp_path / "arm", tmp_path / "fb", since + 5, since + 100, model="m")
    assert later["canary"].requests == 5


def test_config_names_the_bad_key(tmp_path) -> None:
    with pytest.raises(RolloutConfigError, match=r"rollout\.checks\.min_requestz"):
        load_rollout_config(tmp_path, None, {"checks": {"min_requestz": 3}})
    with pytest.raises(RolloutConfigError, match=r"rollout\.step_points"):
        load_rollout_config(tmp_path, None, {"step_points": 0})


def test_cpu_is_compared_at_equal_batch_sizes() -> None:
    from dataclasses import replace

    # the same model: the canary's small share makes size-1 batches, dearer per series
    prod = replace(_arm("production", cpu=2.1), cpu_by_batch={1: (40, 3.6), 8: (800, 2.0)})
    same = replace(_arm("canary", cpu=3.7), cpu_by_batch={1: (30, 3.7)})
    d = decide({"production": prod, "canary": same}, CFG, 10.0)
    assert d.action == "step", d.reason
    cpu = next(c for c in d.checks if c.name == "cpu")
    assert cpu.status == "pass" and cpu.numbers["batch_sizes"] == [1]
    dear = replace(same, cpu_by_batch={1: (30, 9.0)})
    d = decide({"production": prod, "canary": dear}, CFG, 10.0)
    assert d.action == "rollback" and "at equal batch sizes [1]" in d.reason
    apart = replace(same, cpu_by_batch={2: (30, 9.0)})
    cpu = next(c for c in decide({"production": prod, "canary": apart}, CFG, 10.0).checks
               if c.name == "cpu")  # fmt: skip
    assert cpu.status == "skip"
