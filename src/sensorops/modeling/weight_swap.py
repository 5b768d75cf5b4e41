"""Export a graph once, then write other weights of the same architecture into copies of it.

A dynamo export costs ~30 s; a variant that keeps every shape (QAT, unstructured pruning) has the
same graph as the fp32 model with other initializer values. :class:`WeightSwapTemplate` learns,
from the fp32 model and its exported graph, where every initializer value comes from: the
exporter stores parameters as they are, transposed, reshaped or with LSTM gate blocks re-ordered
and concatenated, so each initializer element equals one parameter element. The match is made by
value (trained fp32 weights are distinct numbers); an initializer whose values are all absent
from the parameters is a constant of the graph and is copied unchanged.

Limits, checked and refused rather than guessed:

- a value that occurs in several parameter elements (an LSTM's ``b_ih`` and ``b_hh`` stay equal
  when they start equal) is resolved by order within the initializer's own parameters; when the
  counts do not line up the template is refused (:class:`~sensorops.modeling.errors.ExportError`)
  and the caller exports instead;
- an initializer only partly made of parameter values (a folded ``b_ih + b_hh``, a BatchNorm
  folded into a conv) is refused the same way;
- the new model must have the same parameter names and shapes.

The caller still parity-checks every written graph against its torch model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from torch import nn

from sensorops.atomic import atomic_path
from sensorops.modeling.errors import ExportError

logger = logging.getLogger(__name__)


def _flat_params(model: nn.Module) -> tuple[list[tuple[str, tuple[int, ...]]], np.ndarray]:
    names = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    flat = np.concatenate(
        [p.detach().cpu().numpy().astype(np.float32).ravel() for _, p in model.named_parameters()]
    )
    return names, flat


class WeightSwapTemplate:
    """An exported graph plus, per initializer, the parameter elements it holds.

    Attributes:
        path: the template ONNX file.
        mapped_: initializer name -> flat indices into the concatenated parameters.
        constants_: initializers copied unchanged.
    """

    def __init__(self, path: str | os.PathLike[str], model: nn.Module) -> None:
        self.path = Path(path)
        self._proto = onnx.load(str(self.path))
        self._signature, flat = _flat_params(model)
        owner = np.repeat(
            np.arange(len(self._signature)),
            [int(np.prod(shape)) if shape else 1 for _, shape in self._signature],
        )
        prefixes = [n for n, _ in self._signature] + [n for n, _ in model.named_buffers()]
        order = np.argsort(flat, kind="stable")
        values = flat[order]
        self.mapped_: dict[str, np.ndarray] = {}
        self.constants_: list[str] = []
        for init in self._proto.graph.initializer:
            derived = any(init.name.startswith(p) for p in prefixes)
            if init.data_type != TensorProto.FLOAT:
                self.constants_.append(init.name)
                continue
            arr = numpy_helper.to_array(init).astype(np.float32).ravel()
            lo = np.searchsorted(values, arr, side="left")
            hi = np.searchsorted(values, arr, side="right")
            count = hi - lo
            if not count.any() and not derived:
                self.constants_.append(init.name)
                continue
            if not count.all():
                raise ExportError(
                    f"initializer {init.name!r} of {self.path} is computed from the parameters "
                    f"({int((count == 0).sum())} of {arr.size} values are no parameter value, "
                    "e.g. a folded BatchNorm); cannot swap weights"
                )
            idx = order[np.minimum(lo, len(values) - 1)]
            # a value held by several parameter elements (an LSTM's b_ih and b_hh start equal
            # and get equal gradients, so they stay equal): keep the candidates inside the
            # parameters this initializer's unambiguous values come from, and give the k-th
            # occurrence in the initializer the k-th candidate in parameter order (the exporter
            # concatenates in parameter order); anything else is refused
            sources = set(owner[idx[count == 1]].tolist())
            ambiguous = np.flatnonzero(count > 1)
            for value in np.unique(arr[ambiguous]):
                where = ambiguous[arr[ambiguous] == value]
                j0 = int(where[0])
                cands = sorted(
                    int(c) for c in order[lo[j0] : hi[j0]] if not sources or owner[c] in sources
                )
                if len(cands) != len(where):
                    raise ExportError(
                        f"initializer {init.name!r} of {self.path} holds the value {value!r} "
                        f"{len(where)} times, but {len(cands)} parameter elements of its "
                        "parameters hold it; cannot tell which"
                    )
                idx[where] = cands
            self.mapped_[init.name] = idx
        if not self.mapped_:
            raise ExportError(f"no initializer of {self.path} holds the model's parameters")
        logger.info(
            "weight-swap template %s: %d initializers mapped to parameters, %d constants",
            self.path,
            len(self.mapped_),
            len(self.constants_),
        )

    def write(self, model: nn.Module, dst: str | os.PathLike[str]) -> Path:
        """Write a copy of the template holding ``model``'s weights to ``dst`` (atomic).

        Raises:
            ExportError: ``model`` has other parameter names or shapes than the template's.
        """
        signature, flat = _flat_params(model)
        if signature != self._signature:
            raise ExportError(
                f"{type(model).__name__} does not have the parameter names/shapes of the "
                f"template {self.path}; export it instead"
            )
        proto = onnx.ModelProto()
        proto.CopyFrom(self._proto)
        for i, init in enumerate(proto.graph.initializer):
            idx = self.mapped_.get(init.name)
            if idx is None:
                continue
            # only the bytes change: name, dims, metadata and layout stay the template's
            target = proto.graph.initializer[i]
            del target.float_data[:]
            target.raw_data = np.ascontiguousarray(flat[idx], dtype="<f4").tobytes()
        dst = Path(dst)
        with atomic_path(dst, suffix=".onnx") as tmp:
            onnx.save(proto, str(tmp))
        return dst
