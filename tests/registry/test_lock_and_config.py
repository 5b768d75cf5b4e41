"""The promotion lease (real server, real threads) and the strict configuration."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from sensorops.registry import (
    LockBusy,
    LockConfig,
    PromotionConfig,
    RegistryConfigError,
    RegistryLease,
    connect,
)
from sensorops.registry.lock import LOCK_TAG
from sensorops.registry.register import ensure_registered_model


def test_lease_gives_mutual_exclusion_between_threads(mlflow_server, model_name):
    reg = connect(mlflow_server)
    ensure_registered_model(reg, model_name)
    cfg = LockConfig(ttl_s=60, settle_s=0.3, max_write_gap_s=0.2, timeout_s=60)
    intervals: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with RegistryLease(connect(mlflow_server), model_name, cfg, purpose="test"):
                start = time.monotonic()
                time.sleep(0.4)
                intervals.append((start, time.monotonic()))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(intervals) == 3
    intervals.sort()
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end, f"lease held twice at once: {intervals}"
    assert LOCK_TAG not in reg.client.get_registered_model(model_name).tags


def test_busy_lease_times_out_and_expired_lease_is_taken_over(mlflow_server, model_name):
    reg = connect(mlflow_server)
    ensure_registered_model(reg, model_name)
    other = {
        "owner": "someone-else",
        "actor": "ops@box",
        "purpose": "promote v9",
        "expires_at": time.time() + 600,
    }
    reg.client.set_registered_model_tag(model_name, LOCK_TAG, json.dumps(other))
    cfg = LockConfig(ttl_s=60, settle_s=0.6, max_write_gap_s=0.5, timeout_s=0.5)
    with pytest.raises(
        LockBusy, match=r"locked by another promotion \(ops@box: promote v9\)"
    ) as info:
        RegistryLease(reg, model_name, cfg).acquire()
    assert info.value.exit_code == 4
    reg.client.set_registered_model_tag(
        model_name, LOCK_TAG, json.dumps({**other, "expires_at": time.time() - 1})
    )
    lease = RegistryLease(reg, model_name, cfg.model_copy(update={"timeout_s": 60.0}))
    with lease:
        lease.verify()
        assert (
            json.loads(reg.client.get_registered_model(model_name).tags[LOCK_TAG])["owner"]
            == lease.owner
        )
    assert LOCK_TAG not in reg.client.get_registered_model(model_name).tags


def test_config_errors_name_key_and_options():
    with pytest.raises(
        RegistryConfigError,
        match=r"promotion\.gates\.regression_metric: Input should be 'accuracy' or 'macro_f1'; got 'auc'",
    ):
        PromotionConfig.from_params({"gates": {"regression_metric": "auc"}})
    with pytest.raises(
        RegistryConfigError,
        match=r"promotion\.gates\.margin is not a known key; valid keys are \[.*'production_margin_points'",
    ):
        PromotionConfig.from_params({"gates": {"margin": 1}})
    with pytest.raises(RegistryConfigError, match=r"promotion\.modelname is not a known key"):
        PromotionConfig.from_params({"modelname": "x"})
    with pytest.raises(
        RegistryConfigError, match=r"settle_s .* must be greater than lock\.max_write_gap_s"
    ):
        PromotionConfig.from_params({"lock": {"settle_s": 0.1, "max_write_gap_s": 0.5}})
    assert PromotionConfig.from_params(None).model_name == "sensorops-classifier"


def test_base_parameters_file_is_valid(project_root):
    import yaml

    params = yaml.safe_load((project_root / "conf/base/parameters_promotion.yml").read_text())
    cfg = PromotionConfig.from_params(params["promotion"])
    assert cfg.model_name == "sensorops-classifier"
    test_params = yaml.safe_load((project_root / "conf/test/parameters_promotion.yml").read_text())
    PromotionConfig.from_params({**params["promotion"], **test_params["promotion"]})


def test_score_matches_sklearn():
    import numpy as np
    from sklearn.metrics import f1_score

    from sensorops.registry.scoring import score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 5))
    s = score(logits, y)
    pred = logits.argmax(1)
    assert s.accuracy == np.mean(pred == y) and s.n == 200
    assert s.macro_f1 == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
