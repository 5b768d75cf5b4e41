"""The self-contained registered model: ONNX network + preprocessing state, as one MLflow model.

A version logged by :func:`log_model` is a directory with two flavors:

- ``onnx`` (``model.onnx``): the bare network, so ``mlflow.onnx.load_model`` (the registry
  gates) keeps working on aligned, normalized ``(batch, length, n_channels)`` input;
- ``python_function`` (loader :mod:`sensorops.registry.pyfunc`): ``model.onnx`` **plus**
  ``preprocessing/`` (:class:`~sensorops.contracts.preprocessing.PreprocessingState`), so
  ``mlflow.pyfunc.load_model(uri).predict(raw)`` turns a raw series into class probabilities
  with the very repair, DTW alignment and normalization code the pipeline ran.

``predict`` accepts

- a long-format ``pandas.DataFrame`` (``series_id``, optional ``t``, one column per channel;
  extra ``label``/``split`` columns are ignored), one or many series of any length;
- a ``(channels, time)`` array (one series) or ``(n_series, channels, time)`` array;
- a list of ``(channels, time)`` arrays of different lengths;

and returns a ``DataFrame`` with ``series_id``, ``predicted`` and ``proba_<class>`` per class
(the columns of ``data/07_model_output/test_predictions.csv``).

:class:`SensorModel` is the same model without MLflow; the Ray Serve replicas use it directly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sensorops.contracts.preprocessing import InputError, PreprocessingState

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
PREPROCESSING_DIR = "preprocessing"
FLAVOR_LOADER = "sensorops.registry.pyfunc"
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def choose_providers(
    prefer: Sequence[str] = ("TensorrtExecutionProvider", "CUDAExecutionProvider"),
    available: Sequence[str] | None = None,
    gpu_present: bool | None = None,
) -> list[str]:
    """Execution providers to ask ONNX Runtime for: preferred GPU ones only when really usable.

    ``onnxruntime-gpu`` lists CUDA/TensorRT as *available* even on a machine without a GPU; a
    GPU provider is only requested when a CUDA device is also visible (``nvidia-smi``-free check:
    ``/dev/nvidia0`` or ``CUDA_VISIBLE_DEVICES`` naming a device). CPU is always the fallback.

    Args:
        prefer: GPU providers in order of preference.
        available: ``onnxruntime.get_available_providers()`` (default: ask ORT).
        gpu_present: override of the device check (tests).
    """
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    if gpu_present is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpu_present = Path("/dev/nvidia0").exists() and visible not in ("", "-1")
    chosen = [p for p in prefer if p in available] if gpu_present else []
    return [*chosen, "CPUExecutionProvider"]


class SensorModel:
    """Raw series in, class probabilities out: PreprocessingState + one ONNX Runtime session.

    Args:
        onnx_model: path of the ``.onnx`` file, or its bytes.
        state: the preprocessing state the network was trained behind.
        providers: ORT providers (default :func:`choose_providers`).
        intra_op_threads: ORT intra-op threads (1 per replica scales by replicas, not threads).

    Attributes:
        provider: the execution provider that actually runs the first node of the graph.
    """

    def __init__(
        self,
        onnx_model: str | os.PathLike[str] | bytes,
        state: PreprocessingState,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.state = state
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
        wanted = list(providers) if providers is not None else choose_providers()
        try:
            self.session = ort.InferenceSession(source, opts, providers=wanted)
        except Exception as exc:  # a GPU provider that cannot start: run on CPU, say so
            if wanted == ["CPUExecutionProvider"]:
                raise
            logger.warning("ORT providers %s failed (%s); falling back to CPU", wanted, exc)
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        self.provider = self.session.get_providers()[0]
        self.input_name = self.session.get_inputs()[0].name
        n_out = self.session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(state.classes):
            raise ValueError(
                f"the ONNX model has {n_out} outputs but the preprocessing state names "
                f"{len(state.classes)} classes {list(state.classes)}"
            )

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], **kwargs: Any) -> SensorModel:
        """Load from a model directory holding ``model.onnx`` and ``preprocessing/``."""
        path = Path(path)
        return cls(path / ONNX_FILE, PreprocessingState.load(path / PREPROCESSING_DIR), **kwargs)

    # --- the numeric core -----------------------------------------------------------------------

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Network logits ``(n, n_classes)`` for model input ``X`` ``(n, length, n_channels)``."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input_name: X})[0], dtype=np.float32)

    def predict_proba_series(
        self, values: Sequence[np.ndarray], field: str = "instances"
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Softmax probabilities ``(n, n_classes)`` for raw ``(time, channels)`` series.

        Raises:
            InputError: a series breaks the input contract (the message names ``field[i]``).
        """
        checked = self.state.check(values, field=field)
        X, info = self.state.transform(checked)
        return softmax(self.logits(X)), info

    # --- the public predict (pyfunc) ------------------------------------------------------------

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Class probabilities for raw series (see the module docstring for accepted inputs)."""
        ids, values = to_series(model_input, self.state.channels)
        proba, _ = self.predict_proba_series(values)
        return proba_frame(ids, proba, self.state.classes)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (as stable as torch's)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def proba_frame(ids: Sequence[str], proba: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """``series_id``, ``predicted`` and ``proba_<class>`` columns."""
    out = pd.DataFrame(
        {
            "series_id": [str(i) for i in ids],
            "predicted": [classes[k] for k in proba.argmax(axis=1)] if len(proba) else [],
        }
    )
    for k, name in enumerate(classes):
        out[f"proba_{name}"] = proba[:, k] if len(proba) else []
    return out


def to_series(model_input: Any, channels: Sequence[str]) -> tuple[list[str], list[np.ndarray]]:
    """Normalize the accepted inputs to ``(ids, [(time, channels) arrays])``.

    Raises:
        InputError: a missing channel column, a bad array rank or an unsupported type.
    """
    if isinstance(model_input, dict) and "series_id" not in model_input:
        # mlflow's tensor input {"inputs": ...} arrives as an array; a dict of named tensors too
        if len(model_input) == 1:
            model_input = next(iter(model_input.values()))
    if isinstance(model_input, pd.DataFrame) or (
        isinstance(model_input, dict) and "series_id" in model_input
    ):
        return long_frame_to_series(pd.DataFrame(model_input), channels)
    if isinstance(model_input, list | tuple) and model_input and not _is_number(model_input[0]):
        arrays = [np.asarray(a) for a in model_input]
        if all(a.ndim == 2 for a in arrays):
            return [str(i) for i in range(len(arrays))], [a.T for a in arrays]
    arr = np.asarray(model_input)
    if arr.ndim == 2:
        return ["0"], [arr.T]
    if arr.ndim == 3:
        return [str(i) for i in range(len(arr))], [a.T for a in arr]
    raise InputError(
        "inputs",
        f"must be a long-format table, a (channels, time) array or a list of them; got "
        f"{type(model_input).__name__} with shape {getattr(arr, 'shape', None)}",
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.number)


def long_frame_to_series(
    frame: pd.DataFrame, channels: Sequence[str]
) -> tuple[list[str], list[np.ndarray]]:
    """Group a long-format table into ``(time, channels)`` arrays, rows ordered by ``t``."""
    missing = [c for c in ("series_id", *channels) if c not in frame.columns]
    if missing:
        raise InputError(
            "columns",
            f"long-format input lacks column(s) {missing}; expected series_id, t and the "
            f"channels {list(channels)}",
        )
    for ch in channels:
        if not pd.api.types.is_numeric_dtype(frame[ch]):
            raise InputError(f"columns.{ch}", f"must be numeric; got dtype {frame[ch].dtype}")
    order = ["series_id", "t"] if "t" in frame.columns else ["series_id"]
    ordered = frame.sort_values(order, kind="stable")
    ids, values = [], []
    for sid, group in ordered.groupby(ordered["series_id"].astype(str), sort=False):
        ids.append(str(sid))
        values.append(group[list(channels)].to_numpy(dtype=np.float64))
    return ids, values


# --- the MLflow flavor ----------------------------------------------------------------------------


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> SensorModel:
    """MLflow's pyfunc loader hook (``loader_module: sensorops.registry.pyfunc``)."""
    return SensorModel.from_dir(data_path)


def save_model(
    path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    state: PreprocessingState,
    mlflow_model: Any = None,
    pip_requirements: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Write the two-flavor model directory (what :func:`log_model` logs).

    Uses ``mlflow.onnx.save_model`` for the ``onnx`` flavor (CPU provider recorded), then adds
    the preprocessing state and points the ``python_function`` flavor at this module.
    """
    import mlflow.onnx
    import onnx
    from mlflow import pyfunc
    from mlflow.models import Model

    path = Path(path)
    mlflow_model = mlflow_model if mlflow_model is not None else Model()
    mlflow.onnx.save_model(
        onnx.load(str(onnx_path)),
        str(path),
        mlflow_model=mlflow_model,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=pip_requirements,
        save_as_external_data=False,
    )
    state.save(path / PREPROCESSING_DIR)
    previous = mlflow_model.flavors.get(pyfunc.FLAVOR_NAME, {})
    mlflow_model.flavors.pop(pyfunc.FLAVOR_NAME, None)
    pyfunc.add_to_model(
        mlflow_model,
        loader_module=FLAVOR_LOADER,
        env=previous.get(pyfunc.ENV),
    )
    mlflow_model.metadata = {
        **(mlflow_model.metadata or {}),
        "sensorops.preprocessing": PREPROCESSING_DIR,
        "sensorops.classes": list(state.classes),
        "sensorops.channels": list(state.channels),
        "sensorops.length": state.length,
    }
    mlflow_model.save(str(path / "MLmodel"))


def log_model(
    onnx_path: str | os.PathLike[str],
    state: PreprocessingState,
    name: str,
    pip_requirements: list[str] | None = None,
) -> Any:
    """Log the self-contained model into the active run; returns MLflow's ``ModelInfo``."""
    import sys

    from mlflow.models import Model

    return Model.log(
        artifact_path=None,
        name=name,
        flavor=sys.modules[__name__],
        onnx_path=str(onnx_path),
        state=state,
        pip_requirements=pip_requirements,
    )


def pip_requirements() -> list[str]:
    """Pinned requirements of the pyfunc flavor (the installed versions).

    The loader is :mod:`sensorops.registry.pyfunc`, so the ``sensorops`` package itself must be
    installed where the model is loaded (it is not on a public index).
    """
    import contextlib
    import importlib.metadata

    reqs = []
    for dist in (
        "mlflow",
        "onnx",
        "onnxruntime",
        "onnxruntime-gpu",
        "numpy",
        "pandas",
        "scipy",
        "scikit-learn",
        "pyod",
        "numba",
        "pydantic",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
    return reqs
