"""The compression comparison table: one row per variant, gates, and its CSV/Markdown/JSON forms.

Direction of the numbers: ``accuracy`` and ``macro_f1`` are in [0, 1], higher is better;
``delta_points`` is ``100 * (accuracy - reference accuracy)`` (negative = worse than fp32
torch); a gate passes when the drop ``-delta_points`` is at most the limit of the variant's gate
family. The reference row (``fp32_torch``) is not gated (``gate_passed`` is ``None``) and, having
no ONNX file, is never offered for registration; a row whose gate failed is never registrable.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from sensorops.atomic import atomic_write_text
from sensorops.modeling.config import VARIANT_GATE, VARIANTS, GateConfig
from sensorops.modeling.errors import GateError, ModelingError

REFERENCE = "fp32_torch"
#: Slack when comparing an accuracy drop with its limit (floating-point noise of 100 * delta).
GATE_EPS = 1e-9


@dataclass
class VariantResult:
    """Measured facts about one variant (before gating).

    Attributes:
        name: one of :data:`~sensorops.modeling.config.VARIANTS`.
        runtime: ``"torch"`` or ``"onnxruntime"``.
        onnx_path: the variant's ONNX file (``None`` for ``fp32_torch``).
        execution_provider: provider that ran the evaluation (read back from the session).
        accuracy / macro_f1: on the test split, in [0, 1].
        size_bytes: ONNX file size (state-dict size for ``fp32_torch``); the table's
            ``size_ratio`` divides it by the ``fp32_onnx`` size (the reference size without one).
        params: parameter count of the torch model the variant was built from.
        sparsity: share of exact zeros among its weight matrices.
        latency: ``{"p50_ms_b1": ..., "p99_ms_b1": ..., "throughput_b1": ..., ...}``.
        notes: free text (what is quantized, parity numbers...).
    """

    name: str
    runtime: str
    onnx_path: str | None
    execution_provider: str
    accuracy: float
    macro_f1: float
    size_bytes: int
    params: int
    sparsity: float
    latency: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        if self.name not in VARIANTS:
            raise ModelingError(
                f"unknown variant name {self.name!r}; valid names are {list(VARIANTS)}"
            )


def gate_verdict(
    name: str, delta_points: float, gates: GateConfig
) -> tuple[str, float | None, bool | None]:
    """``(gate family, limit in points, passed)`` for a variant; the reference is not gated."""
    if name not in VARIANT_GATE:
        raise GateError(f"unknown variant name {name!r}; valid names are {list(VARIANTS)}")
    family = VARIANT_GATE[name]
    if family == "reference":
        return family, None, None
    limit = float(getattr(gates, family))
    drop = -delta_points
    return family, limit, bool(drop <= limit + GATE_EPS)


@dataclass
class ComparisonTable:
    """Gated rows in :data:`VARIANTS` order (see :func:`build_comparison`)."""

    rows: list[dict[str, Any]]
    gates: dict[str, float]
    reference: str = REFERENCE

    @property
    def registrable(self) -> list[str]:
        return [r["name"] for r in self.rows if r["registrable"]]

    def to_json(self) -> dict[str, Any]:
        """``{"reference", "gates", "registrable", "variants": [row, ...]}`` (promotion reads this)."""
        return {
            "reference": self.reference,
            "gates": self.gates,
            "registrable": self.registrable,
            "variants": self.rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComparisonTable:
        """Inverse of :meth:`to_json`.

        Raises:
            ModelingError: ``data`` lacks ``variants`` or ``gates``.
        """
        if not isinstance(data, dict) or "variants" not in data or "gates" not in data:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ModelingError(
                f"compression comparison JSON needs 'variants' and 'gates'; got {keys}"
            )
        return cls(
            rows=list(data["variants"]),
            gates=dict(data["gates"]),
            reference=data.get("reference", REFERENCE),
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def to_markdown(self) -> str:
        return comparison_markdown(self)

    def metrics(self) -> dict[str, dict[str, float | int]]:
        """MLflow metrics (``MlflowMetricsHistoryDataset`` form): accuracy, size, latency per variant."""
        out: dict[str, dict[str, float | int]] = {}
        for row in self.rows:
            for key in ("accuracy", "macro_f1", "delta_points", "size_bytes", "params", "sparsity"):
                out[f"compression.{row['name']}.{key}"] = {"value": float(row[key]), "step": 0}
            for key, value in row.items():
                if key.startswith(("p50_ms_", "p99_ms_")) and value is not None:
                    out[f"compression.{row['name']}.{key}"] = {"value": float(value), "step": 0}
            if row["gate_passed"] is not None:
                out[f"compression.{row['name']}.gate_passed"] = {
                    "value": float(row["gate_passed"]),
                    "step": 0,
                }
        return out


def build_comparison(results: list[VariantResult], gates: GateConfig) -> ComparisonTable:
    """Gate every result against the ``fp32_torch`` row and order them as :data:`VARIANTS`.

    Raises:
        ModelingError: no ``fp32_torch`` result, or a variant appears twice.
    """
    by_name: dict[str, VariantResult] = {}
    for res in results:
        if res.name in by_name:
            raise ModelingError(f"variant {res.name!r} appears twice in the comparison")
        by_name[res.name] = res
    if REFERENCE not in by_name:
        raise ModelingError(
            f"the comparison needs the reference variant {REFERENCE!r}; got {sorted(by_name)}"
        )
    ref = by_name[REFERENCE]
    size_base = by_name["fp32_onnx"].size_bytes if "fp32_onnx" in by_name else ref.size_bytes
    rows = []
    for name in VARIANTS:
        if name not in by_name:
            continue
        res = by_name[name]
        delta = 100.0 * (res.accuracy - ref.accuracy)
        family, limit, passed = gate_verdict(name, delta, gates)
        row: dict[str, Any] = {
            "name": name,
            "runtime": res.runtime,
            "onnx_path": res.onnx_path,
            "execution_provider": res.execution_provider,
            "accuracy": res.accuracy,
            "macro_f1": res.macro_f1,
            "delta_points": delta,
            "macro_f1_delta_points": 100.0 * (res.macro_f1 - ref.macro_f1),
            "size_bytes": int(res.size_bytes),
            "size_ratio": res.size_bytes / size_base if size_base else math.nan,
            "params": int(res.params),
            "sparsity": float(res.sparsity),
            **res.latency,
            "gate": family,
            "gate_limit_points": limit,
            "gate_passed": passed,
            "registrable": bool(passed) and res.onnx_path is not None,
            "notes": res.notes,
        }
        rows.append(row)
    return ComparisonTable(rows=rows, gates=gates.model_dump())


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "pass" if value else "**FAIL**"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return str(value)


def comparison_markdown(table: ComparisonTable) -> str:
    """A Markdown table (one row per variant) with a short legend."""
    lat_cols = (
        [c for c in table.rows[0] if c.startswith(("p50_ms_", "p99_ms_"))] if table.rows else []
    )
    cols = [
        "name",
        "runtime",
        "accuracy",
        "macro_f1",
        "delta_points",
        "size_bytes",
        "size_ratio",
        "params",
        "sparsity",
        *lat_cols,
        "gate_limit_points",
        "gate_passed",
        "registrable",
    ]
    lines = [
        "# Compression comparison",
        "",
        f"Reference: `{table.reference}`. `delta_points` = 100 × (accuracy − reference accuracy); a gate "
        "passes when the drop is at most `gate_limit_points`. `size_ratio` is relative to the fp32 ONNX file "
        "(to the reference when there is none). Latencies are ONNX Runtime (torch eager for "
        "the reference) per call in milliseconds at the batch size in the column name. Variants that fail "
        "their gate are never offered for registration.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for row in table.rows:
        cells = [_fmt(row.get(c)) for c in cols]
        cells[cols.index("registrable")] = "yes" if row.get("registrable") else "no"
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- `{r['name']}`: {r['notes']}" for r in table.rows if r.get("notes")]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def write_comparison(
    table: ComparisonTable,
    csv_path: str | os.PathLike[str],
    markdown_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str],
) -> None:
    """Write the CSV, Markdown and JSON forms atomically (for use outside Kedro)."""
    atomic_write_text(csv_path, table.to_frame().to_csv(index=False))
    atomic_write_text(markdown_path, table.to_markdown())
    atomic_write_text(json_path, json.dumps(table.to_json(), indent=2, default=str))


def result_from_dict(data: dict[str, Any]) -> VariantResult:
    """Inverse of ``dataclasses.asdict`` for :class:`VariantResult` (validates the name)."""
    return VariantResult(**data)


def result_to_dict(result: VariantResult) -> dict[str, Any]:
    return asdict(result)
