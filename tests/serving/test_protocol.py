"""Pure parts of the service: request parsing, provider choice, config, the prediction log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sensorops.registry.pyfunc import choose_providers
from sensorops.serving.config import ServingConfig, ServingConfigError, load_serving_config
from sensorops.serving.prediction_log import PartitionedLog
from sensorops.serving.protocol import RequestError, parse_oip, parse_predict


def test_predict_body_shapes() -> None:
    x = np.arange(12.0).reshape(3, 4)
    values, deadline, field = parse_predict({"data": x.tolist()}, 8, 1000.0)
    assert field == "data" and deadline == 1000.0 and values[0].shape == (4, 3)
    values, deadline, field = parse_predict(
        {"instances": [x.tolist(), x[:, :2].tolist()], "deadline_ms": 50}, 8, 1000.0
    )
    assert field == "instances" and deadline == 50 and [v.shape for v in values] == [(4, 3), (2, 3)]
    values, _, _ = parse_predict({"data": [[1, None, 3], [4, 5, 6]]}, 8, 1.0)
    assert np.isnan(values[0][1, 0])


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ([1, 2], 422, "body"),
        ({"data": [[1]], "instances": []}, 422, "body"),
        ({"instances": []}, 422, "instances"),
        ({"data": [[True, False]]}, 422, "data"),
        ({"data": [["1", "2"]]}, 422, "data"),
        ({"data": [1, 2, 3]}, 422, "data"),
        ({"data": [[1.0, 2.0], [3.0]]}, 422, "data"),  # ragged rows
        ({"instances": [[[1.0]]] * 9}, 413, "instances"),
        ({"data": [[1.0]], "deadline_ms": "soon"}, 422, "deadline_ms"),
    ],
)
def test_predict_errors_name_the_field(body: object, status: int, field: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_predict(body, 8, 1000.0)
    assert (info.value.status, info.value.field) == (status, field)


def test_open_inference_protocol_body() -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [2, 3, 4], "datatype": "FP32",
                                    "data": x.reshape(-1).tolist()}]}  # fmt: skip
    values, rid, _ = parse_oip(body, 3, 8, 100.0)
    assert rid == "r1" and len(values) == 2
    np.testing.assert_array_equal(values[1], x[1].T)
    for bad, field in (
        ({"inputs": [{"shape": [3, 4], "datatype": "FP32"}]}, "inputs[0].data"),
        ({"inputs": [{"shape": [3, 4], "datatype": "STRING", "data": []}]}, "inputs[0].datatype"),
        ({"inputs": [{"shape": [2, 4], "datatype": "FP32", "data": [0.0] * 8}]}, "inputs[0].shape"),
    ):
        with pytest.raises(RequestError) as info:
            parse_oip(bad, 3, 8, 100.0)
        assert info.value.field == field


def test_gpu_providers_only_when_a_gpu_is_really_there() -> None:
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(available=avail, gpu_present=False) == ["CPUExecutionProvider"]
    assert choose_providers(available=avail, gpu_present=True) == avail
    assert choose_providers(available=["CPUExecutionProvider"], gpu_present=True) == [
        "CPUExecutionProvider"
    ]


def test_serving_config_is_strict_and_layered(tmp_path: Path, project_root: Path) -> None:
    cfg = load_serving_config(project_root / "conf")
    assert cfg.batching.max_wait_ms <= 50 and cfg.alias == "production"
    with pytest.raises(ServingConfigError, match=r"serving\.batching\.max_wait_ms"):
        ServingConfig.from_dict({"batching": {"max_wait_ms": 80}})
    with pytest.raises(ServingConfigError, match=r"serving\.batchng is not a known"):
        ServingConfig.from_dict({"batchng": {}})
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parameters_serving.yml").write_text("serving:\n  port: 9000\n")
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "parameters_serving.yml").write_text("serving:\n  port: 9100\n")
    assert load_serving_config(tmp_path, "prod").port == 9100


def test_prediction_log_rolls_atomically_by_count_and_partition(tmp_path: Path) -> None:
    log = PartitionedLog(tmp_path, flush_records=3, flush_s=60)
    rec = {"request_id": "a", "time": np.datetime64("2026-12-04T10:00:00", "us"), "version": "1"}
    log.append([rec, {**rec, "version": "2"}])
    assert not list(tmp_path.rglob("*.parquet"))  # below flush_records: still buffered
    log.append([{**rec, "request_id": "b"}])  # third record -> roll
    assert sorted(p.parent.name for p in tmp_path.rglob("*.parquet")) == ["version=1", "version=2"]
    log.close()
    frame = pd.read_parquet(tmp_path)
    assert sorted(frame["request_id"]) == ["a", "a", "b"]
    assert set(frame["date"].astype(str)) == {"2026-12-04"}
