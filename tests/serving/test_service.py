"""The real service (Ray cluster from ``ray start --head``, direct ingress, real MLflow server).

Order matters only for the last test, which restarts the service.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sensorops.registry.pyfunc import long_frame_to_series
from tests.serving_fixtures import ALIAS, http

pytestmark = pytest.mark.slow


def _test_split(project: Path) -> tuple[list[str], list[np.ndarray], pd.DataFrame]:
    raw = pd.read_parquet(project / "data/02_intermediate/sensor_long.parquet")
    test = raw[raw["split"] == "test"]
    channels = [c for c in raw.columns if c not in ("series_id", "t", "label", "split")]
    ids, values = long_frame_to_series(test, channels)
    return ids, values, test


def _metrics(url: str) -> dict[str, Any]:
    status, _, text = http("GET", f"{url}/metrics")
    assert status == 200
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_ready_health_and_the_provider_that_ran(service: Any, serving_model: dict) -> None:
    status, _, ready = http("GET", f"{service.url}/ready")
    assert status == 200 and ready["ready"] is True
    assert ready["version"] == serving_model["version"] and ready["alias"] == ALIAS
    assert ready["provider"] == "CPUExecutionProvider"  # no GPU here: CUDA/TensorRT not requested
    assert ready["model_load_s"] > 0
    assert http("GET", f"{service.url}/-/healthz")[0] == 200


def test_parity_with_the_pipeline_test_predictions(
    service: Any, serving_model: dict, mlflow_server: str
) -> None:
    project = serving_model["project"]
    expected = pd.read_csv(project / "data/07_model_output/test_predictions.csv")
    expected["series_id"] = expected["series_id"].astype(str)
    ids, values, test = _test_split(project)
    classes = [c.removeprefix("proba_") for c in expected.columns if c.startswith("proba_")]
    want = expected.set_index("series_id").loc[ids]
    body = {"instances": [v.T.tolist() for v in values]}
    status, _, out = http("POST", f"{service.url}/v1/predict", body)
    assert status == 200, out
    assert out["version"] == serving_model["version"] and out["alias"] == ALIAS
    assert out["request_id"] and out["classes"] == classes
    got = np.array([[p["probabilities"][c] for c in classes] for p in out["predictions"]])
    assert [p["predicted"] for p in out["predictions"]] == want["predicted"].tolist()
    np.testing.assert_allclose(got, want[[f"proba_{c}" for c in classes]].to_numpy(), atol=1e-5)
    # the Open Inference Protocol path: same numbers
    arr = np.stack([v.T for v in values]) if len({len(v) for v in values}) == 1 else None
    if arr is not None:
        oip = {
            "id": "parity",
            "inputs": [
                {
                    "name": "x",
                    "shape": list(arr.shape),
                    "datatype": "FP64",
                    "data": arr.reshape(-1).tolist(),
                }
            ],
        }
        status, _, res = http("POST", f"{service.url}/v2/models/{serving_model['name']}/infer", oip)
        assert status == 200, res
        assert res["id"] == "parity" and res["model_version"] == serving_model["version"]
        proba = np.asarray(res["outputs"][0]["data"]).reshape(res["outputs"][0]["shape"])
        np.testing.assert_allclose(proba, got, atol=1e-9)
    # the registered model itself (mlflow.pyfunc), on the long-format rows
    import mlflow.pyfunc

    mlflow.set_registry_uri(mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model(f"models:/{serving_model['name']}/{serving_model['version']}")
    frame = model.predict(test).set_index("series_id").loc[ids]
    assert frame["predicted"].tolist() == want["predicted"].tolist()
    np.testing.assert_allclose(
        frame[[f"proba_{c}" for c in classes]].to_numpy(),
        want[[f"proba_{c}" for c in classes]].to_numpy(),
        atol=1e-5,
    )


def _register_again(uri: str, client: Any, name: str, source: str, tags: dict[str, str]) -> Any:
    import mlflow

    from sensorops.registry.client import Registry

    reg = Registry(uri, client)
    with reg.fluent():
        return mlflow.register_model(source, name, tags=tags)


def _series(project: Path) -> np.ndarray:
    return _test_split(project)[1][0].T  # (channels, time)


@pytest.mark.parametrize(
    ("make", "status", "field", "words"),
    [
        (lambda x: b'{"data": [[1, 2', 400, "body", "malformed JSON"),
        (lambda x: {"data": x[:-1].tolist()}, 422, "data", "channels; expected"),
        (lambda x: {"data": x[:, :2].tolist()}, 422, "data", "time steps; expected at least"),
        (lambda x: {"data": [["a"] * x.shape[1]] * x.shape[0]}, 422, "data", "numbers"),
        (lambda x: {"data": [row[: 5 + i] for i, row in enumerate(x.tolist())]}, 422, "data",
         "rectangular"),
        (lambda x: {"instances": [x.tolist(), np.where(np.arange(x.shape[1]) < x.shape[1] - 2,
                                                       np.nan, x).tolist()]},
         422, "instances[1]", "consecutive NaNs"),
        (lambda x: {"instances": [x.tolist()] * 65}, 413, "instances", "at most 64"),
        (lambda x: {"series": x.tolist()}, 422, "series", "unknown field"),
        (lambda x: {"data": x.tolist(), "deadline_ms": -1}, 422, "deadline_ms", "positive"),
    ],
)  # fmt: skip
def test_bad_input_is_4xx_naming_the_field(
    service: Any, serving_model: dict, make: Any, status: int, field: str, words: str
) -> None:
    x = _series(serving_model["project"])
    body = make(x)
    if isinstance(body, dict):
        body = json.dumps(body).replace("NaN", "null").encode()
    code, headers, out = http("POST", f"{service.url}/v1/predict", raw=body)
    assert code == status, out
    assert out["field"] == field and words in out["error"], out
    assert out["request_id"] == headers["x-request-id"]


def test_open_inference_protocol_errors(service: Any, serving_model: dict) -> None:
    x = _series(serving_model["project"])
    good = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.reshape(-1).tolist()}]}  # fmt: skip
    code, _, out = http("POST", f"{service.url}/v2/models/no-such-model/infer", good)
    assert code == 404 and out["field"] == "model_name"
    bad = {"inputs": [{**good["inputs"][0], "shape": [x.shape[0], x.shape[1] + 1]}]}
    code, _, out = http("POST", f"{service.url}/v2/models/{serving_model['name']}/infer", bad)
    assert code == 422 and out["field"] == "inputs[0].data"
    code, _, meta = http("GET", f"{service.url}/v2/models/{serving_model['name']}")
    assert code == 200 and meta["inputs"][0]["shape"][1] == x.shape[0]


def _burst(url: str, body: dict, n: int, headers: dict[str, str] | None = None) -> list[tuple]:
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(http, "POST", f"{url}/v1/predict", body, headers) for _ in range(n)]
        return [f.result() for f in futures]


def test_dynamic_batching_is_visible_in_the_metrics(service: Any, serving_model: dict) -> None:
    x = _series(serving_model["project"])
    before = _metrics(service.url)["sensorops_serving_batch_size"]
    results = _burst(service.url, {"data": x.tolist()}, 24)
    assert all(r[0] == 200 for r in results), [r[2] for r in results if r[0] != 200]
    fam = _metrics(service.url)

    def total(f: Any, suffix: str) -> float:
        return sum(s.value for s in f.samples if s.name.endswith(suffix))

    hist = fam["sensorops_serving_batch_size"]
    n_batches = total(hist, "_count") - total(before, "_count")
    n_series = total(hist, "_sum") - total(before, "_sum")
    assert n_series == 24 and n_batches < 24, (n_series, n_batches)  # some batch held > 1 series
    families = set(fam)
    for name in ("sensorops_serving_requests", "sensorops_serving_errors",
                 "sensorops_serving_request_latency_seconds", "sensorops_serving_queue_depth",
                 "sensorops_serving_model_load_seconds", "sensorops_serving_model_info",
                 "sensorops_serving_batch_seconds"):  # fmt: skip
        assert name in families, sorted(families)
    reqs = [s for s in fam["sensorops_serving_requests"].samples if s.name.endswith("_total")]
    assert any(s.labels == {"endpoint": "predict", "version": serving_model["version"],
                            "code": "200"} for s in reqs)  # fmt: skip
    (info,) = fam["sensorops_serving_model_info"].samples
    assert info.labels["provider"] == "CPUExecutionProvider"


def test_admission_control_sheds_with_retry_after(service: Any, serving_model: dict) -> None:
    """A forced slow model (test-only header) and a short deadline: shed, never queue forever."""
    x = _series(serving_model["project"])
    body = {"data": x.tolist(), "deadline_ms": 450}
    # 40 at once is more than two full batches (max 16): the last ones cannot meet 450 ms
    results = _burst(service.url, body, 40, headers={"X-Debug-Delay-Ms": "300"})
    codes = [r[0] for r in results]
    assert set(codes) <= {200, 503}, codes
    shed = [r for r in results if r[0] == 503]
    assert shed and 200 in codes, codes
    assert all(r[1]["retry-after"] == "1" and "overloaded" in r[2]["error"] for r in shed)
    fam = _metrics(service.url)["sensorops_serving_shed"]
    assert sum(s.value for s in fam.samples if s.name.endswith("_total")) >= len(shed)
    # back to normal afterwards: the estimate recovers and requests are admitted again
    for _ in range(30):
        if http("POST", f"{service.url}/v1/predict", {"data": x.tolist()})[0] == 200:
            break
        time.sleep(0.2)
    else:
        pytest.fail("service kept shedding after the slow burst")


def test_feedback_and_the_prediction_log(service: Any, serving_model: dict) -> None:
    x = _series(serving_model["project"])
    status, _, out = http("POST", f"{service.url}/v1/predict", {"data": x.tolist()},
                          headers={"X-Request-Id": "log-me"})  # fmt: skip
    assert status == 200 and out["request_id"] == "log-me"
    status, _, fb = http("POST", f"{service.url}/v1/feedback",
                         {"request_id": "log-me", "label": out["classes"][0]})  # fmt: skip
    assert status == 202 and fb["accepted"]
    status, _, bad = http("POST", f"{service.url}/v1/feedback",
                          {"request_id": "log-me", "label": "no-such-class"})  # fmt: skip
    assert status == 422 and bad["field"] == "label" and '"new_class": true' in bad["error"]
    # a class the model does not know (a new kind of fault) is labelled on purpose
    status, _, fb = http("POST", f"{service.url}/v1/feedback",
                         {"request_id": "log-me", "label": "fault_new", "new_class": True})  # fmt: skip
    assert status == 202 and fb["new_class"] is True
    status, _, bad = http("POST", f"{service.url}/v1/feedback",
                          {"request_id": "log-me", "label": out["classes"][0], "new_class": True})  # fmt: skip
    assert status == 422 and bad["field"] == "label"
    log_dir = Path(service.out) / "prediction_log"
    for _ in range(40):  # rolled within flush_s (1 s here)
        files = list(log_dir.glob("date=*/version=*/part-*.parquet"))
        frame = pd.read_parquet(log_dir) if files else pd.DataFrame()
        if len(frame) and (frame["request_id"] == "log-me").any():
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"request log-me not in the prediction log {log_dir}")
    row = frame[frame["request_id"] == "log-me"].iloc[0]
    assert str(row["version"]) == serving_model["version"] and row["alias"] == ALIAS
    assert row["predicted"] == out["predictions"][0]["predicted"]
    assert math.isclose(sum(row["probabilities"]), 1.0, rel_tol=1e-9)
    assert row["n_steps"] == x.shape[1] and row["latency_ms"] > 0
    # the series as received (monitoring's live data quality and retraining read it)
    np.testing.assert_allclose(np.vstack(row["input_values"]), np.asarray(x, dtype=float).T)
    assert not list(log_dir.rglob(".*.tmp"))  # atomic rolls: no half-written file left


def test_hot_reload_under_load_has_zero_failures(
    service: Any, serving_model: dict, mlflow_server: str
) -> None:
    client, name = serving_model["client"], serving_model["name"]
    old = client.get_model_version(name, serving_model["version"])
    # mlflow.register_model resolves the 'models:/m-...' source of a logged model, which the
    # MLflow 3.17 server refuses in a bare create_model_version
    new = _register_again(
        mlflow_server, client, name, old.source, {"sensorops.variant": "reload-test"}
    )
    x = _series(serving_model["project"])
    seen: list[tuple[int, str]] = []
    stop = time.monotonic() + 600

    def load() -> None:
        while time.monotonic() < stop:
            code, _, out = http("POST", f"{service.url}/v1/predict", {"data": x.tolist()})
            seen.append((code, out.get("version") if isinstance(out, dict) else None))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(load) for _ in range(4)]
        time.sleep(1.0)
        client.set_registered_model_alias(name, ALIAS, new.version)
        try:
            for _ in range(240):
                if http("GET", f"{service.url}/ready")[2]["version"] == str(new.version):
                    break
                time.sleep(0.5)
            time.sleep(1.0)
        finally:
            stop = time.monotonic()
            for w in workers:
                w.result()
            client.set_registered_model_alias(name, ALIAS, serving_model["version"])
    codes = [c for c, _ in seen]
    assert codes and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    versions = [v for _, v in seen]
    assert serving_model["version"] in versions and str(new.version) in versions
    # back on the original version before the next test
    for _ in range(240):
        if http("GET", f"{service.url}/ready")[2]["version"] == serving_model["version"]:
            break
        time.sleep(0.5)


@pytest.mark.xfail(
    reason="known failure, open in issue 12: the restarted service now deploys (only its app is "
    "deleted on a shared cluster, Serve's controller stays up), but the job's Ray task outlives "
    "the deleted replica: it finishes the job itself and Ray may run it once more, so the job is "
    "never resubmitted (attempts stays 0)",
    strict=False,
)
def test_a_job_survives_a_service_restart(
    service: Any, serving_model: dict, ray_cluster: dict, tmp_path: Path
) -> None:
    project = serving_model["project"]
    ids, values, test = _test_split(project)
    copies = []
    for k in range(30):  # enough series that the job is still open when the service stops
        part = test.copy()
        part["series_id"] = part["series_id"].astype(str) + f"-{k}"
        copies.append(part)
    path = tmp_path / "batch.parquet"
    pd.concat(copies).drop(columns=["label", "split"]).to_parquet(path)
    code, _, bad = http("POST", f"{service.url}/v1/jobs", {"input": str(tmp_path / "none.parquet")})
    assert code == 422 and bad["field"] == "input"
    code, _, job = http("POST", f"{service.url}/v1/jobs", {"input": str(path)})
    assert code == 202, job
    job_file = Path(service.out) / "jobs" / job["job_id"] / "job.json"
    state_at_stop = json.loads(job_file.read_text())["state"]
    service.stop()
    assert ray_cluster["proc"].poll() is None  # the cluster (a separate process) stays up
    service.start()
    for _ in range(600):
        code, _, rec = http("GET", f"{service.url}/v1/jobs/{job['job_id']}")
        assert code == 200
        if rec["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert rec["state"] == "succeeded", rec
    if state_at_stop in ("queued", "running"):
        assert rec["attempts"] >= 1, rec
    result = pd.read_parquet(rec["result"])
    assert len(result) == 30 * len(ids) and result["error"].isna().all()
    # the batch path scores exactly like the synchronous one
    status, _, out = http("POST", f"{service.url}/v1/predict",
                          {"instances": [v.T.tolist() for v in values]})  # fmt: skip
    assert status == 200
    first = result.set_index("series_id").loc[[f"{i}-0" for i in ids]]
    assert first["predicted"].tolist() == [p["predicted"] for p in out["predictions"]]
    assert http("GET", f"{service.url}/v1/jobs/unknown-id")[0] == 404
