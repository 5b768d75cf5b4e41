"""4-bit weight quantization-aware training and its ONNX form.

What is quantized: every weight **matrix** of the model (parameters with ``ndim >= 2``: the
``nn.Linear``, ``nn.Conv1d``, ``nn.LSTM`` ``weight_ih``/``weight_hh`` and
``nn.MultiheadAttention`` ``in_proj_weight`` tensors), to 4 bits, **asymmetric, per output
channel** (one fp32 scale and one uint4 zero point per row of the torch weight). Biases,
normalisation parameters and all activations stay fp32 (weight-only quantization).

Training (:class:`WeightFakeQuantizer`): a straight-through estimator. Each step the latent fp32
weights are swapped for their fake-quantized values for the forward and backward pass, then
restored before the optimizer step, so the gradient computed at the 4-bit point updates the
latent weights. This works for every module type (including ``nn.LSTM``'s flat weights) without
re-writing modules. After training the weights are left on the 4-bit grid.

ONNX (:func:`quantize_onnx_weights_4bit`): the fp32 export of the grid-valued model has each
such weight initializer replaced by a packed ``UINT4`` initializer plus per-channel fp32 scale
and ``UINT4`` zero point feeding ``DequantizeLinear`` (opset >= 21, ``axis`` = the output
channel axis in the ONNX layout). The channel axis is found per initializer as the axis along
which re-quantization reproduces the tensor exactly (the exporter may transpose weights or
route them through Slice/Concat to re-order LSTM gates); rank >= 2 float initializers that are
not on a 4-bit grid are left fp32 and listed. At session start ONNX Runtime (optimization level
"all") fuses ``DequantizeLinear`` + ``MatMul`` into its 4-bit ``MatMulNBits`` kernel (which by
default also quantizes activations on the fly, hence differences of ~1e-3 to torch); in front of
Conv, Gemm and LSTM the ``DequantizeLinear`` expands the weights to fp32 and the op runs in fp32.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from sensorops.atomic import atomic_path
from sensorops.modeling.config import INT4_MIN_OPSET
from sensorops.modeling.errors import ModelingError
from sensorops.modeling.onnx_export import onnx_opset

logger = logging.getLogger(__name__)

QMAX_4BIT = 15


def quantize_per_channel_asym(
    w: np.ndarray, axis: int = 0, bits: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric per-channel quantization of ``w`` along ``axis``.

    The range of every channel is widened to include 0 so that 0 is exactly representable.

    Returns:
        ``(q, scale, zero_point)``: ``q`` uint8 codes in ``[0, 2**bits - 1]`` with the shape of
        ``w``; ``scale`` float32 ``(w.shape[axis],)``; ``zero_point`` uint8 ``(w.shape[axis],)``.
        Dequantize with ``(q - zero_point) * scale`` broadcast along ``axis``.
    """
    qmax = 2**bits - 1
    moved = np.moveaxis(np.asarray(w, dtype=np.float64), axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    lo = np.minimum(flat.min(axis=1), 0.0)
    hi = np.maximum(flat.max(axis=1), 0.0)
    scale = (hi - lo) / qmax
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32).astype(np.float64)
    zp = np.clip(np.round(-lo / scale), 0, qmax)
    q = np.clip(np.round(flat / scale[:, None]) + zp[:, None], 0, qmax)
    q = np.moveaxis(q.reshape(moved.shape), 0, axis).astype(np.uint8)
    return q, scale.astype(np.float32), zp.astype(np.uint8)


def dequantize_per_channel(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int
) -> np.ndarray:
    """Inverse of :func:`quantize_per_channel_asym` (float32, shape of ``q``)."""
    shape = [1] * q.ndim
    shape[axis] = -1
    return (
        (q.astype(np.float32) - zero_point.reshape(shape).astype(np.float32)) * scale.reshape(shape)
    ).astype(np.float32)


def fake_quantize_4bit(w: torch.Tensor, clip_ratio: float = 1.0) -> torch.Tensor:
    """Fake-quantized copy of ``w`` (4-bit, asymmetric, per row = dim 0), same dtype and shape.

    ``clip_ratio`` < 1 shrinks every row's range to ``clip_ratio * [min, max]`` (values outside
    are clamped to the range ends), trading outlier error for a finer step.
    """
    flat = w.detach().reshape(w.shape[0], -1).to(torch.float64)
    lo = torch.clamp(flat.min(dim=1).values, max=0.0) * clip_ratio
    hi = torch.clamp(flat.max(dim=1).values, min=0.0) * clip_ratio
    scale = (hi - lo) / QMAX_4BIT
    scale = (
        torch.where(scale > 0, scale, torch.ones_like(scale)).to(torch.float32).to(torch.float64)
    )
    zp = torch.clamp(torch.round(-lo / scale), 0, QMAX_4BIT)
    q = torch.clamp(torch.round(flat / scale[:, None]) + zp[:, None], 0, QMAX_4BIT)
    return ((q - zp[:, None]) * scale[:, None]).to(w.dtype).reshape(w.shape)


def quantizable_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters QAT quantizes: every parameter with ``ndim >= 2``."""
    return [name for name, p in model.named_parameters() if p.ndim >= 2]


class WeightFakeQuantizer:
    """Straight-through 4-bit weight fake quantization for a model being fine-tuned.

    Usage inside a training loop::

        fq = WeightFakeQuantizer().fit(model)
        with fq.quantized_forward():
            loss = criterion(model(x), y); loss.backward()
        optimizer.step()
        ...
        fq.finalize()   # weights stay on the 4-bit grid

    Attributes:
        names_: quantized parameter names (set by :meth:`fit`).
    """

    def __init__(self, bits: int = 4) -> None:
        self.bits = bits

    def fit(self, model: nn.Module) -> WeightFakeQuantizer:
        if self.bits != 4:
            raise ModelingError(f"qat.bits must be 4; got {self.bits}")
        params = dict(model.named_parameters())
        self.names_ = quantizable_parameters(model)
        if not self.names_:
            raise ModelingError(f"{type(model).__name__} has no weight matrices to quantize")
        self.params_ = [params[n] for n in self.names_]
        self.clip_ratios_ = [1.0] * len(self.params_)
        return self

    def calibrate(
        self, model: nn.Module, X: np.ndarray, clip_ratios: Sequence[float] = (1.0,)
    ) -> WeightFakeQuantizer:
        """Choose each weight matrix's clip ratio on training data (the range observer).

        Greedy, one weight matrix at a time in model order (the earlier ones at their chosen
        ratio, the later ones still fp32): the ratio from ``clip_ratios`` whose fake-quantized
        model has the smallest mean squared logit error against the fp32 model on ``X``.
        """
        if not clip_ratios or min(clip_ratios) <= 0 or max(clip_ratios) > 1:
            raise ModelingError(f"qat.clip_ratios must be in (0, 1]; got {list(clip_ratios)}")
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        was_training = model.training
        model.eval()
        latent = [p.detach().clone() for p in self.params_]
        with torch.no_grad():
            ref = model(Xt)
            for i, p in enumerate(self.params_):
                best = (math.inf, 1.0)
                for r in clip_ratios:
                    p.copy_(fake_quantize_4bit(latent[i], float(r)))
                    err = float(torch.mean((model(Xt) - ref) ** 2))
                    best = min(best, (err, float(r)))
                self.clip_ratios_[i] = best[1]
                p.copy_(fake_quantize_4bit(latent[i], best[1]))
            for p, w in zip(self.params_, latent, strict=True):
                p.copy_(w)
        model.train(was_training)
        return self

    def clip_summary(self) -> str:
        """``"1.0 x3, 0.9 x2"``: how many weight matrices got each clip ratio."""
        from collections import Counter

        counts = Counter(self.clip_ratios_)
        return ", ".join(f"{r:g} x{n}" for r, n in sorted(counts.items(), reverse=True))

    @contextmanager
    def quantized_forward(self) -> Iterator[None]:
        """Within the block the weights hold their 4-bit values; on exit the latent fp32 return."""
        latent = [p.detach().clone() for p in self.params_]
        with torch.no_grad():
            for p, r in zip(self.params_, self.clip_ratios_, strict=True):
                p.copy_(fake_quantize_4bit(p, r))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(self.params_, latent, strict=True):
                    p.copy_(w)

    def weight_arrays(self) -> list[np.ndarray]:
        """Current values of the quantized parameters (after :meth:`finalize`: the 4-bit grid)."""
        return [p.detach().cpu().numpy().copy() for p in self.params_]

    def finalize(self) -> None:
        """Leave every quantized weight on its 4-bit grid (call once, after training)."""
        with torch.no_grad():
            for p, r in zip(self.params_, self.clip_ratios_, strict=True):
                p.copy_(fake_quantize_4bit(p, r))


@dataclass(frozen=True)
class Int4Report:
    """What :func:`quantize_onnx_weights_4bit` did.

    Attributes:
        quantized: initializer name -> ``"shape axis=<a>"`` of each weight stored as UINT4.
        kept_fp32: weight-like initializers left fp32 (not on a per-channel 4-bit grid).
        n_weights_4bit: number of weight values stored in 4 bits.
        opset: opset of the written model.
    """

    quantized: dict[str, str]
    kept_fp32: list[str]
    n_weights_4bit: int
    opset: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ort_optimized_op_counts(path: str | os.PathLike[str]) -> dict[str, int]:
    """Op types (with counts) of ``path`` after ONNX Runtime's full CPU graph optimization.

    Shows what ORT really executes, e.g. ``MatMulNBits`` where it fused a 4-bit
    ``DequantizeLinear`` + ``MatMul`` into its 4-bit kernel.
    """
    import tempfile
    from collections import Counter

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    return dict(Counter(n.op_type for n in optimized.graph.node).most_common())


def _grid_axis(w: np.ndarray, rtol: float = 1e-5) -> int | None:
    """The axis along which ``w`` is already on a per-channel 4-bit grid, or ``None``.

    Among the axes that reproduce ``w`` the one with the fewest channels wins (a ``(16, 1)``
    transposed row vector is per-tensor, not 16 one-value channels).
    """
    tol = rtol * max(float(np.max(np.abs(w))), 1e-12)
    exact: list[tuple[int, float, int]] = []
    for axis in range(w.ndim):
        if w.size // w.shape[axis] == 1:
            continue  # one value per channel reproduces anything; it is not a 4-bit grid
        q, scale, zp = quantize_per_channel_asym(w, axis)
        err = float(np.max(np.abs(dequantize_per_channel(q, scale, zp, axis) - w)))
        if err <= tol:
            exact.append((w.shape[axis], err, axis))
    # fewest channels first: an axis of single values is trivially "exact" but is not the grid
    return min(exact)[2] if exact else None


class _WeightIndex:
    """Finds the torch weight matrix an ONNX initializer holds, whatever its layout.

    The exporter may transpose a weight or re-order LSTM gate blocks, so the match is on the
    sorted values (same multiset), not on shape.
    """

    def __init__(self, weights: Sequence[np.ndarray]) -> None:
        self._by_size: dict[int, list[np.ndarray]] = {}
        for w in weights:
            self._by_size.setdefault(int(w.size), []).append(
                np.sort(np.asarray(w, np.float32).ravel())
            )

    def matches(self, w: np.ndarray) -> bool:
        flat = np.sort(w.astype(np.float32).ravel())
        return any(np.array_equal(flat, ref) for ref in self._by_size.get(int(w.size), []))


def _is_weight(name: str, w: np.ndarray, index: _WeightIndex | None, names: set[str]) -> bool:
    if name in names or (index is not None and index.matches(w)):
        return True
    return sum(d > 1 for d in w.shape) >= 2


def quantize_onnx_weights_4bit(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    weights: Sequence[np.ndarray] | None = None,
    names: Sequence[str] | None = None,
    min_size: int = 1,
) -> Int4Report:
    """Store the 4-bit-grid weight initializers of ``src`` as ``UINT4`` + ``DequantizeLinear``.

    Args:
        src: fp32 ONNX model of a QAT-finalized network, opset >= 21.
        dst: output path (atomic).
        weights: the QAT weight matrices (:meth:`WeightFakeQuantizer.weight_arrays`).
        names: their parameter names (the exporter keeps them for weights it does not fold).
        min_size: initializers with fewer values are left alone.

    An initializer is treated as a weight when it holds one of ``weights`` in any layout
    (transposed, gate-reordered), carries one of ``names`` (e.g. a conv weight into which the
    exporter folded a BatchNorm: still a per-channel grid, with rescaled steps), or is a float
    tensor with at least two non-singleton dimensions. Vectors (biases, norm parameters,
    concatenated LSTM biases of shape ``(1, 8H)``) stay fp32. A weight is stored in 4 bits only
    if it is exactly on a per-channel 4-bit grid; the others are listed in ``kept_fp32``.

    Raises:
        ModelingError: missing file, opset < 21, or no weight could be quantized.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ModelingError(f"ONNX model {src} does not exist")
    model = onnx.load(str(src))
    opset = onnx_opset(model)
    if opset < INT4_MIN_OPSET:
        raise ModelingError(
            f"4-bit DequantizeLinear needs opset >= {INT4_MIN_OPSET}; {src} has opset {opset}"
        )
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    index = _WeightIndex(weights) if weights is not None else None
    weight_names = set(names or ())
    # every float initializer of rank >= 2 that a node reads: the exporter may route a weight
    # through Slice/Concat/Unsqueeze (e.g. LSTM gate re-ordering) before its consumer, so the
    # consumer does not identify it; the grid check below does.
    candidates: list[str] = []
    for node in graph.node:
        for name in node.input:
            if name in inits and name not in candidates:
                candidates.append(name)
    quantized: dict[str, str] = {}
    kept: list[str] = []
    new_nodes: list[onnx.NodeProto] = []
    n_values = 0
    for name in candidates:
        init = inits[name]
        if init.data_type != TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        if w.ndim < 2 or w.size < min_size:
            continue
        if not _is_weight(name, w, index, weight_names):
            continue
        axis = _grid_axis(w)
        if axis is None:
            kept.append(name)
            continue
        q, scale, zp = quantize_per_channel_asym(w, axis)
        graph.initializer.remove(init)
        graph.initializer.extend(
            [
                numpy_helper.from_array(q.astype(ml_dtypes.uint4), f"{name}_uint4"),
                numpy_helper.from_array(scale, f"{name}_scale"),
                numpy_helper.from_array(zp.astype(ml_dtypes.uint4), f"{name}_zero_point"),
            ]
        )
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_uint4", f"{name}_scale", f"{name}_zero_point"],
                [name],
                name=f"{name}_DequantizeLinear",
                axis=axis,
            )
        )
        quantized[name] = f"{list(w.shape)} axis={axis}"
        n_values += int(w.size)
    if not quantized:
        raise ModelingError(
            f"no weight initializer of {src} is on a per-channel 4-bit grid; was the model QAT-finalized?"
        )
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + nodes)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(dst, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    logger.info(
        "stored %d weight tensors (%d values) as UINT4 in %s; kept fp32: %s",
        len(quantized),
        n_values,
        dst,
        kept,
    )
    return Int4Report(quantized=quantized, kept_fp32=kept, n_weights_4bit=n_values, opset=opset)
