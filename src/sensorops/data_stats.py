"""Sizes and shapes of node inputs/outputs, for tracking. No Kedro, no MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataSize:
    """``count``: rows (tables), elements (arrays), series (model input) or items (containers)."""

    count: int | None
    shape: tuple[int, ...] | None


def describe_data(obj: Any) -> DataSize:
    """Return the row/element count and the shape of ``obj`` where it has one."""
    from sensorops.model_input import SPLITS, ModelInput

    if isinstance(obj, ModelInput):
        n = sum(len(obj.y[s]) for s in SPLITS)
        return DataSize(n, (n, obj.length, obj.n_channels))
    shape = getattr(obj, "shape", None)
    if shape is not None and not callable(shape):
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            dims = None
        if dims is not None:
            if hasattr(obj, "columns") or (
                getattr(obj, "ndim", None) == 1 and hasattr(obj, "index")
            ):
                return DataSize(dims[0] if dims else 0, dims)  # pandas: rows
            size = 1
            for d in dims:
                size *= d
            return DataSize(size, dims)  # numpy / torch: elements
    if isinstance(obj, (str, bytes)):
        return DataSize(None, None)
    if hasattr(obj, "__len__"):
        try:
            return DataSize(len(obj), None)
        except TypeError:
            pass
    return DataSize(None, None)
