"""Gates and the comparison table in its three forms."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sensorops.modeling import (
    ComparisonTable,
    GateError,
    ModelingError,
    VariantResult,
    build_comparison,
)
from sensorops.modeling.comparison import gate_verdict, write_comparison
from sensorops.modeling.config import GateConfig


def _res(name: str, acc: float, path: str | None = "m.onnx") -> VariantResult:
    return VariantResult(
        name=name,
        runtime="torch" if path is None else "onnxruntime",
        onnx_path=path,
        execution_provider="CPUExecutionProvider",
        accuracy=acc,
        macro_f1=acc,
        size_bytes=1000,
        params=10,
        sparsity=0.0,
        latency={"p50_ms_b1": 0.1, "p99_ms_b1": 0.2},
        notes="n",
    )


def _table() -> ComparisonTable:
    return build_comparison(
        [
            _res("fp32_torch", 0.90, None),
            _res("ptq_int8_static", 0.885),  # -1.5 points > 1.0: fails
            _res("int8_dynamic", 0.895),  # -0.5: passes
            _res("qat_4bit", 0.875),  # -2.5 <= 3.0: passes
            _res("pruned_structured", 0.90),  # 0: passes
            _res("fp32_onnx", 0.90),
        ],
        GateConfig(),
    )


def test_gate_rejects_a_variant_whose_drop_exceeds_its_limit() -> None:
    rows = {r["name"]: r for r in _table().rows}
    assert (
        rows["ptq_int8_static"]["gate_passed"] is False
        and rows["ptq_int8_static"]["registrable"] is False
    )
    assert rows["ptq_int8_static"]["delta_points"] == pytest.approx(-1.5)
    assert (
        rows["int8_dynamic"]["gate_passed"] is True and rows["int8_dynamic"]["registrable"] is True
    )
    assert rows["qat_4bit"]["gate_passed"] is True and rows["qat_4bit"]["gate_limit_points"] == 3.0
    assert rows["fp32_torch"]["gate_passed"] is None and rows["fp32_torch"]["registrable"] is False


def test_gate_limits_are_parameters() -> None:
    assert gate_verdict("qat_4bit", -2.5, GateConfig(qat_4bit=2.0))[2] is False
    assert gate_verdict("pruned_unstructured", -0.9, GateConfig())[2] is True
    assert gate_verdict("pruned_unstructured", -1.1, GateConfig())[2] is False
    with pytest.raises(GateError, match="unknown variant name 'int2'"):
        gate_verdict("int2", 0.0, GateConfig())


def test_rows_follow_the_variant_order_and_need_the_reference() -> None:
    assert [r["name"] for r in _table().rows] == [
        "fp32_torch",
        "fp32_onnx",
        "ptq_int8_static",
        "int8_dynamic",
        "qat_4bit",
        "pruned_structured",
    ]
    with pytest.raises(ModelingError, match="needs the reference variant 'fp32_torch'"):
        build_comparison([_res("qat_4bit", 0.9)], GateConfig())
    with pytest.raises(ModelingError, match="appears twice"):
        build_comparison(
            [_res("fp32_torch", 0.9, None), _res("fp32_torch", 0.9, None)], GateConfig()
        )


def test_unknown_variant_name_is_a_clear_error() -> None:
    with pytest.raises(
        ModelingError, match=r"unknown variant name 'int3'; valid names are \['fp32_torch'"
    ):
        _res("int3", 0.9)


def test_three_forms_agree(tmp_path: Path) -> None:
    table = _table()
    write_comparison(table, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "c.json")
    frame = pd.read_csv(tmp_path / "c.csv")
    assert list(frame["name"]) == [r["name"] for r in table.rows]
    assert {
        "accuracy",
        "macro_f1",
        "delta_points",
        "size_bytes",
        "params",
        "sparsity",
        "p50_ms_b1",
        "p99_ms_b1",
        "gate_passed",
        "onnx_path",
    } <= set(frame.columns)
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["registrable"] == ["fp32_onnx", "int8_dynamic", "qat_4bit", "pruned_structured"]
    assert ComparisonTable.from_json(data).rows == table.rows
    md = (tmp_path / "c.md").read_text()
    assert "| ptq_int8_static |" in md and "**FAIL**" in md
    ref_line = next(line for line in md.splitlines() if line.startswith("| fp32_torch |"))
    assert ref_line.endswith("| – | no |")  # the reference is not gated and not registrable
    metrics = table.metrics()
    assert metrics["compression.ptq_int8_static.gate_passed"] == {"value": 0.0, "step": 0}
    assert "compression.fp32_torch.gate_passed" not in metrics
    with pytest.raises(ModelingError, match="needs 'variants' and 'gates'"):
        ComparisonTable.from_json({"rows": []})
