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
        match=r"promotion\.gates\.regression_metric must be one of \['accuracy', 'macro_f1'\]; got 'auc'",
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


def test_score_is_the_shared_macro_over_all_classes():
    import numpy as np
    from sklearn.metrics import f1_score

    from sensorops.metrics import scores_from_logits
    from sensorops.registry.scoring import score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 5))
    s = score(logits, y)
    pred = logits.argmax(1)
    assert s.accuracy == np.mean(pred == y) and s.n == 200
    expected = f1_score(y, pred, average="macro", labels=list(range(5)), zero_division=0)
    assert s.macro_f1 == pytest.approx(expected)
    # a class neither in y nor predicted still counts (0): 2 of 3 classes perfect -> 2/3, as in
    # the compression table
    y2 = np.array([0, 1, 0, 1])
    logits2 = np.eye(3)[y2]
    assert score(logits2, y2).macro_f1 == pytest.approx(2 / 3)
    assert score(logits2, y2).macro_f1 == scores_from_logits(y2, logits2)["macro_f1"]
    with pytest.raises(ValueError, match="empty test split"):
        score(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))


def test_fluent_blocks_of_two_threads_do_not_interleave(tmp_path):
    """Registry.fluent holds a process-wide lock: a second thread waits until the first is done."""
    import mlflow

    from sensorops.registry import Registry

    a = Registry(uri=f"sqlite:///{tmp_path}/a.db", client=None)
    b = Registry(uri=f"sqlite:///{tmp_path}/b.db", client=None)
    old = mlflow.get_tracking_uri()
    a_inside, b_inside = threading.Event(), threading.Event()

    def other() -> None:
        a_inside.wait(30)
        with b.fluent():
            b_inside.set()

    thread = threading.Thread(target=other)
    thread.start()
    try:
        with a.fluent():
            a_inside.set()
            b_got_in = b_inside.wait(1.0)  # without the lock b enters and swaps the URIs now
            uri_inside_a = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
            with a.fluent():  # re-entrant in one thread
                pass
    finally:
        thread.join(30)
    assert not b_got_in
    assert uri_inside_a == (a.uri, a.uri)
    assert b_inside.is_set() and not thread.is_alive()
    assert mlflow.get_tracking_uri() == old


def test_auth_protected_server_is_up_and_a_refused_login_is_access_denied():
    """401/403 on /health means a server is there (sensorops.tracking.check_tracking_uri); the
    authenticated read that follows turns a refused login or user into AccessDenied (exit 7)."""
    import http.server

    from sensorops.registry import ServerUnreachable, connect
    from sensorops.registry.client import AccessDenied

    class Handler(http.server.BaseHTTPRequestHandler):
        code = 401

        def do_GET(self) -> None:
            self.send_response(self.code)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for code, words in ((401, "refused the login"), (403, "may not read")):
            Handler.code = code
            with pytest.raises(AccessDenied, match=words) as denied:
                connect(uri)
            assert denied.value.exit_code == 7 and uri in str(denied.value)
        Handler.code = 500
        with pytest.raises(ServerUnreachable, match="answered HTTP 500"):
            connect(uri)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
