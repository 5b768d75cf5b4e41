"""Export a torch classifier to a single self-contained ONNX file and check it.

Uses the dynamo exporter (``torch.onnx.export(dynamo=True)``) with ``external_data=False`` (a
side ``.onnx.data`` file breaks ONNX Runtime quantization and is easily lost), a dynamic batch
axis and, where the model allows it, a dynamic time axis. The written file passes
``onnx.checker.check_model(full_check=True)`` and the opset actually emitted is read back.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from sensorops.atomic import atomic_path
from sensorops.modeling.config import SUPPORTED_OPSETS
from sensorops.modeling.errors import ExportError

logger = logging.getLogger(__name__)

INPUT_NAME = "x"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ExportResult:
    """What was written.

    Attributes:
        onnx_path: the ``.onnx`` file (weights embedded).
        opset: default-domain opset read back from the file.
        size_bytes: file size.
        dynamic_axes: input axis index -> symbolic name (``{0: "batch", 1: "time"}``).
        input_name / output_name: graph input and output names.
    """

    onnx_path: str
    opset: int
    size_bytes: int
    dynamic_axes: dict[int, str]
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["dynamic_axes"] = {str(k): v for k, v in self.dynamic_axes.items()}
        return out


def onnx_opset(model: onnx.ModelProto) -> int:
    """Opset of the default ONNX domain of ``model``."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError("ONNX model declares no default-domain opset")


def _strip_debug_metadata(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _strip_debug_metadata(attr.g)
            for sub in attr.graphs:
                _strip_debug_metadata(sub)


def _export(
    model: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_time: bool
) -> None:
    batch = torch.export.Dim("batch")
    dims: dict[int, object] = {0: batch}
    if dynamic_time:
        dims[1] = torch.export.Dim("time", min=2)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": dims},
            verbose=False,
            report=False,
        )


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike[str],
    opset: int = 20,
    dynamic_time: bool = True,
    strip_debug_metadata: bool = True,
) -> ExportResult:
    """Export ``model`` to ``path`` atomically and validate the result.

    Args:
        model: maps float32 ``(batch, time, channels)`` to logits ``(batch, n_classes)``; it is
            put in eval mode.
        example: a real input ``(batch >= 2, time, channels)``; a batch of 1 would let the
            exporter specialise the batch axis.
        path: destination ``.onnx`` file.
        opset: one of :data:`~sensorops.modeling.config.SUPPORTED_OPSETS`.
        dynamic_time: also make axis 1 dynamic; if the model cannot be exported that way the
            export is retried with a static time axis (logged).
        strip_debug_metadata: drop the per-node debug metadata the dynamo exporter writes
            (torch namespace, FX node text, class hierarchy, stack traces); for small models
            it is most of the file.

    Raises:
        ExportError: unsupported opset, bad example shape, exporter failure, checker failure.
    """
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"opset must be one of {list(SUPPORTED_OPSETS)}; got {opset}")
    if example.ndim != 3 or example.shape[0] < 2:
        raise ExportError(
            f"example input must be (batch >= 2, time, channels); got shape {tuple(example.shape)}"
        )
    model.eval()
    example = example.detach().to(torch.float32).contiguous()
    path = Path(path)
    dynamic_axes = {0: "batch"}
    with atomic_path(path, suffix=".onnx") as tmp:
        try:
            if dynamic_time:
                try:
                    _export(model, example, tmp, opset, dynamic_time=True)
                    dynamic_axes[1] = "time"
                except Exception as exc:  # the model specialises on the length
                    logger.warning(
                        "export with a dynamic time axis failed (%s); using a static one", exc
                    )
                    _export(model, example, tmp, opset, dynamic_time=False)
            else:
                _export(model, example, tmp, opset, dynamic_time=False)
        except Exception as exc:
            raise ExportError(
                f"torch.onnx.export of {type(model).__name__} to {path} failed: {exc}"
            ) from exc
        proto = onnx.load(str(tmp))
        if strip_debug_metadata:
            _strip_debug_metadata(proto.graph)
            onnx.save(proto, str(tmp))
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            raise ExportError(f"exported ONNX model {path} fails onnx.checker: {exc}") from exc
        written = onnx_opset(proto)
        if written != opset:
            raise ExportError(
                f"asked for opset {opset} but the exporter wrote opset {written} to {path}"
            )
    size = path.stat().st_size
    logger.info(
        "exported %s to %s (opset %d, %d bytes, dynamic axes %s)",
        type(model).__name__,
        path,
        written,
        size,
        dynamic_axes,
    )
    return ExportResult(
        onnx_path=str(path), opset=written, size_bytes=size, dynamic_axes=dynamic_axes
    )
