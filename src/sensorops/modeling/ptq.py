"""Post-training int8 quantization with ONNX Runtime: static QDQ and dynamic.

Static: ``quant_pre_process`` (shape inference + graph cleanup), then ``quantize_static`` in QDQ
format with **symmetric per-channel int8 weights** and int8 activations, calibrated (MinMax) on a
sample of the training split. Dynamic: ``quantize_dynamic`` with int8 weights; activations are
quantized on the fly per call.

What ORT quantizes depends on the op: Conv, MatMul and Gemm weights become int8 in both modes;
the ONNX ``LSTM`` op is only quantized by the dynamic mode (``DynamicQuantizeLSTM``); static QDQ
leaves it fp32 (so an LSTM model shrinks much less with static quantization).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from sensorops.atomic import atomic_path
from sensorops.modeling.errors import ModelingError

logger = logging.getLogger(__name__)

#: Ops whose weights static quantization turns into int8 (norms and element-wise ops stay fp32).
STATIC_OP_TYPES: tuple[str, ...] = ("Conv", "MatMul", "Gemm")


class _ArrayReader:
    """``CalibrationDataReader`` over ``X`` ``(n, time, channels)`` in fixed-size batches."""

    def __init__(self, input_name: str, X: np.ndarray, batch_size: int) -> None:
        self.input_name = input_name
        self.X = X
        self.batch_size = batch_size
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.X), self.batch_size):
            yield {
                self.input_name: np.ascontiguousarray(
                    self.X[i : i + self.batch_size], dtype=np.float32
                )
            }

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


def sample_calibration(X: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
    """A seeded random sample (without replacement) of at most ``n_samples`` rows of ``X``."""
    if X.ndim != 3 or len(X) == 0:
        raise ModelingError(
            f"calibration needs a non-empty (n, time, channels) array; got shape {X.shape}"
        )
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))[: min(n_samples, len(X))]
    return np.ascontiguousarray(X[np.sort(idx)], dtype=np.float32)


def _input_name(path: Path) -> str:
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ModelingError(f"{path} has inputs {names}; expected exactly one")
    return names[0]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _preprocess(src: Path, dst: Path, strip_value_info: bool = False) -> None:
    """``quant_pre_process`` into ``dst``; optionally drop the inferred ``value_info``.

    Dynamic quantization rewrites LSTM weights and then re-runs ONNX shape inference, which
    fails on the stale intermediate shapes ("Inferred shape and existing shape differ"), so
    the dynamic path strips them (the quantizer infers them again).
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    if strip_value_info:
        model = onnx.load(str(dst))
        del model.graph.value_info[:]
        onnx.save(model, str(dst))


def quantize_static_int8(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    calibration_X: np.ndarray,
    batch_size: int = 16,
    activation_int8: bool = True,
) -> Path:
    """Static QDQ int8 quantization of ``src`` into ``dst`` (atomic).

    Args:
        src: fp32 ONNX model (weights embedded).
        dst: output path.
        calibration_X: ``(n, time, channels)`` float32 calibration inputs from the training split.
        batch_size: calibration batch size.
        activation_int8: int8 activations (``QInt8``, ORT's CPU default for QDQ); ``False``
            uses uint8 (``QUInt8``).

    Weights: ``QInt8``, symmetric, per channel. Calibration: MinMax. Only the ops in
    :data:`STATIC_OP_TYPES` are quantized.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ModelingError(f"ONNX model {src} does not exist")
    if calibration_X.ndim != 3 or len(calibration_X) == 0:
        raise ModelingError(
            f"calibration_X must be (n >= 1, time, channels); got shape {calibration_X.shape}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        _preprocess(src, pre)
        reader = _ArrayReader(_input_name(pre), calibration_X, batch_size)
        with atomic_path(dst, suffix=".onnx") as out, _quiet():
            quantize_static(
                str(pre),
                str(out),
                reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if activation_int8 else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
                op_types_to_quantize=list(STATIC_OP_TYPES),
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
    logger.info("static int8 QDQ model written to %s (%d bytes)", dst, dst.stat().st_size)
    return dst


def quantize_dynamic_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Dynamic int8 quantization (int8 weights; activations quantized per call) into ``dst``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ModelingError(f"ONNX model {src} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        _preprocess(src, pre, strip_value_info=True)
        with atomic_path(dst, suffix=".onnx") as out, _quiet():
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8)
    logger.info("dynamic int8 model written to %s (%d bytes)", dst, dst.stat().st_size)
    return dst
