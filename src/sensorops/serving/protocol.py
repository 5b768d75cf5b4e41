"""Request parsing and response shapes of the HTTP API (pure functions, no Ray, no FastAPI).

``POST /v1/predict``::

    {"data": [[c0_t0, c0_t1, ...], [c1_t0, ...], ...]}          # one series, (channels, time)
    {"instances": [<(channels, time)>, ...], "deadline_ms": 200}  # a small list
    -> {"request_id", "model", "version", "alias", "classes",
        "predictions": [{"predicted": "walking", "probabilities": {"walking": 0.97, ...}}]}

``POST /v2/models/{name}/infer`` (Open Inference Protocol, as KServe/Triton clients send it)::

    {"id": "abc", "inputs": [{"name": "x", "shape": [n, channels, time] | [channels, time],
                              "datatype": "FP32", "data": [flat row-major values]}]}
    -> {"model_name", "model_version", "id", "outputs": [
          {"name": "probabilities", "shape": [n, n_classes], "datatype": "FP64", "data": [...]},
          {"name": "predicted", "shape": [n], "datatype": "BYTES", "data": [...]}]}

JSON ``null`` inside a series is a missing value (NaN) and is repaired like a dropout.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

OIP_DTYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16"}


class RequestError(ValueError):
    """A bad request: HTTP ``status``, the ``field`` at fault and what was expected."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


def parse_json(raw: bytes) -> Any:
    """Decode the body; malformed JSON is a 400 naming ``body``."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, "body", f"malformed JSON: {exc}") from exc


def to_array(obj: Any, field: str) -> np.ndarray:
    """A nested list as a float64 array; ``null`` -> NaN; strings, booleans, ragged rows -> 422."""
    try:  # numpy 2 refuses ragged rows outright (ValueError), older ones gave dtype=object
        arr = np.asarray(obj) if not isinstance(obj, np.ndarray) else obj
        if arr.dtype == object:
            arr = np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RequestError(
            422,
            field,
            "must be a rectangular array of numbers (or null for a missing value); "
            f"got ragged rows or non-numbers ({exc})",
        ) from exc
    if arr.dtype.kind not in "fiu":
        raise RequestError(
            422, field, f"must hold numbers; got {arr.dtype.kind!r} values (dtype {arr.dtype})"
        )
    return arr.astype(np.float64, copy=False)


def _deadline(body: dict[str, Any], header: str | None, default_ms: float) -> float:
    value: Any = body.get("deadline_ms", header if header is not None else default_ms)
    try:
        ms = float(value)
    except (TypeError, ValueError) as exc:
        raise RequestError(422, "deadline_ms", f"must be a number of ms; got {value!r}") from exc
    if not math.isfinite(ms) or ms <= 0:
        raise RequestError(422, "deadline_ms", f"must be a positive number of ms; got {value!r}")
    return ms


def parse_predict(
    body: Any, max_series: int, default_deadline_ms: float, deadline_header: str | None = None
) -> tuple[list[np.ndarray], float, str]:
    """``/v1/predict`` body -> ``((time, channels) arrays, deadline_ms, field)``.

    ``field`` is ``data`` (one series) or ``instances`` (a list), for error messages.
    """
    if not isinstance(body, dict):
        raise RequestError(422, "body", f"must be a JSON object; got {type(body).__name__}")
    unknown = sorted(set(body) - {"data", "instances", "deadline_ms"})
    if unknown:
        raise RequestError(
            422, unknown[0], "unknown field; expected 'data' or 'instances' (+ 'deadline_ms')"
        )
    if ("data" in body) == ("instances" in body):
        raise RequestError(422, "body", "give exactly one of 'data' (one series) or 'instances'")
    if "data" in body:
        items, prefix = [body["data"]], "data"
    else:
        items = body["instances"]
        if not isinstance(items, list) or not items:
            raise RequestError(
                422, "instances", "must be a non-empty list of (channels, time) arrays"
            )
        prefix = "instances"
    if len(items) > max_series:
        raise RequestError(
            413, prefix, f"{len(items)} series in one request; at most {max_series} (use /v1/jobs)"
        )
    out = []
    for i, item in enumerate(items):
        field = prefix if prefix == "data" else f"instances[{i}]"
        arr = to_array(item, field)
        if arr.ndim != 2:
            raise RequestError(
                422, field, f"must be 2-D (channels, time); got shape {list(arr.shape)}"
            )
        out.append(arr.T)
    return out, _deadline(body, deadline_header, default_deadline_ms), prefix


def parse_oip(
    body: Any,
    n_channels: int,
    max_series: int,
    default_deadline_ms: float,
    deadline_header: str | None = None,
) -> tuple[list[np.ndarray], str | None, float]:
    """OIP infer body -> ``((time, channels) arrays, request id, deadline_ms)``."""
    if not isinstance(body, dict):
        raise RequestError(422, "body", f"must be a JSON object; got {type(body).__name__}")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(
            422, "inputs", "must be a list with one tensor {name, shape, datatype, data}"
        )
    tensor = inputs[0]
    for key in ("shape", "datatype", "data"):
        if key not in tensor:
            raise RequestError(422, f"inputs[0].{key}", "is required")
    if tensor["datatype"] not in OIP_DTYPES:
        raise RequestError(
            422,
            "inputs[0].datatype",
            f"must be one of {sorted(OIP_DTYPES)}; got {tensor['datatype']!r}",
        )
    shape = tensor["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) not in (2, 3)
        or not all(isinstance(d, int) and d > 0 for d in shape)
    ):
        raise RequestError(
            422,
            "inputs[0].shape",
            f"must be [channels, time] or [n, channels, time]; got {shape!r}",
        )
    arr = to_array(tensor["data"], "inputs[0].data").reshape(-1)
    if arr.size != int(np.prod(shape)):
        raise RequestError(
            422,
            "inputs[0].data",
            f"has {arr.size} values; shape {shape} needs {int(np.prod(shape))}",
        )
    arr = arr.reshape(shape if len(shape) == 3 else [1, *shape])
    if arr.shape[1] != n_channels:
        raise RequestError(
            422, "inputs[0].shape", f"has {arr.shape[1]} channels; the model takes {n_channels}"
        )
    if len(arr) > max_series:
        raise RequestError(413, "inputs[0].shape", f"{len(arr)} series; at most {max_series}")
    rid = body.get("id")
    return (
        [a.T for a in arr],
        (str(rid) if rid is not None else None),
        _deadline(body, deadline_header, default_deadline_ms),
    )


def predict_response(
    request_id: str, model: str, version: str, alias: str, classes: list[str], proba: np.ndarray
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model": model,
        "version": version,
        "alias": alias,
        "classes": classes,
        "predictions": [
            {
                "predicted": classes[int(p.argmax())],
                "probabilities": {c: float(p[k]) for k, c in enumerate(classes)},
            }
            for p in proba
        ],
    }


def oip_response(
    request_id: str, model: str, version: str, classes: list[str], proba: np.ndarray
) -> dict[str, Any]:
    return {
        "model_name": model,
        "model_version": version,
        "id": request_id,
        "parameters": {"classes": classes},
        "outputs": [
            {
                "name": "probabilities",
                "shape": [int(proba.shape[0]), int(proba.shape[1])],
                "datatype": "FP64",
                "data": [float(v) for v in proba.reshape(-1)],
            },
            {
                "name": "predicted",
                "shape": [int(proba.shape[0])],
                "datatype": "BYTES",
                "data": [classes[int(p.argmax())] for p in proba],
            },
        ],
    }
