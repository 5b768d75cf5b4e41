"""Complete ``rpt_compression_comparison`` rows for tests of the contract's consumers (no torch)."""

from __future__ import annotations

from typing import Any

from sensorops.modeling.comparison import ComparisonRow


def comparison_row(
    name: str,
    onnx_path: str | None = None,
    gate_passed: bool | None = None,
    registrable: bool | None = None,
    **columns: Any,
) -> ComparisonRow:
    """A typed row with neutral measurements; ``columns`` override any field (a latency key
    such as ``p50_ms_b1`` goes into ``latency``)."""
    latency = {
        k: float(v) for k, v in columns.items() if k.startswith(("p50_", "p99_", "throughput_"))
    }
    fields = {k: v for k, v in columns.items() if k not in latency}
    base: dict[str, Any] = {
        "runtime": "torch" if onnx_path is None else "onnxruntime",
        "execution_provider": "CPUExecutionProvider",
        "accuracy": 0.9,
        "macro_f1": 0.9,
        "delta_points": 0.0,
        "macro_f1_delta_points": 0.0,
        "ci_low_points": None if gate_passed is None else 0.0,
        "ci_high_points": None if gate_passed is None else 0.0,
        "mcnemar_p": None if gate_passed is None else 1.0,
        "fidelity": 1.0,
        "right_to_wrong": 0,
        "wrong_to_right": 0,
        "n_series": 40,
        "size_bytes": 1000,
        "size_ratio": 1.0,
        "params": 10,
        "params_ratio": 1.0,
        "sparsity": 0.0,
        "finetune_steps": 0,
        "gate": "reference" if gate_passed is None else "ptq_int8",
        "gate_limit_points": None if gate_passed is None else 1.0,
        "notes": "",
    }
    if registrable is None:
        registrable = gate_passed is True and onnx_path is not None
    return ComparisonRow(
        name=name,
        onnx_path=onnx_path,
        gate_passed=gate_passed,
        registrable=registrable,
        latency=latency,
        **{**base, **fields},
    )


def comparison_json(*rows: ComparisonRow) -> dict[str, Any]:
    """The compression pipeline's JSON of ``rows``."""
    return {
        "reference": "fp32_torch",
        "gates": {"ptq_int8": 1.0},
        "registrable": [r.name for r in rows if r.registrable],
        "variants": [r.to_dict() for r in rows],
    }
