"""The comparison contract: the paired gate rule (both directions), typed rows, one parser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sensorops.modeling import (
    ComparisonTable,
    GateError,
    ModelingError,
    VariantResult,
    build_comparison,
)
from sensorops.modeling.comparison import (
    ComparisonRow,
    gate_verdict,
    mcnemar_exact_loss_p,
    paired_comparison,
    write_comparison,
)
from sensorops.modeling.config import GateConfig

N = 40
Y = np.arange(N) % 4  # 40 test series, 4 classes (BasicMotions' test split size)


def _pred(n_lost: int = 0, n_gained: int = 0, ref_wrong: int = 4) -> np.ndarray:
    """Predictions that lose ``n_lost`` of the reference's correct series and win back
    ``n_gained`` of the ``ref_wrong`` ones the reference got wrong."""
    pred = _ref_pred(ref_wrong).copy()
    for i in range(ref_wrong, ref_wrong + n_lost):
        pred[i] = (Y[i] + 1) % 4
    for i in range(n_gained):
        pred[i] = Y[i]
    return pred


def _ref_pred(ref_wrong: int = 4) -> np.ndarray:
    pred = Y.copy()
    pred[:ref_wrong] = (Y[:ref_wrong] + 1) % 4  # the reference gets the first series wrong
    return pred


def _res(name: str, pred: np.ndarray, path: str | None = "m.onnx") -> VariantResult:
    acc = float(np.mean(pred == Y))
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
        predictions=pred,
        latency={"p50_ms_b1": 0.1, "p99_ms_b1": 0.2},
        finetune_steps=7,
        notes="n",
    )


def _table() -> ComparisonTable:
    return build_comparison(
        [
            _res("fp32_torch", _ref_pred(), None),
            _res("ptq_int8_static", _pred(n_lost=12)),  # damaged: -30 points
            _res("int8_dynamic", _pred(n_lost=1)),  # one flip of 40: -2.5 points
            _res("qat_4bit", _pred(n_lost=2, n_gained=1)),
            _res("pruned_structured", _ref_pred()),
            _res("fp32_onnx", _ref_pred()),
        ],
        GateConfig(),
        Y,
    )


def test_one_flipped_series_of_40_passes_a_one_point_gate() -> None:
    row = _table().row("int8_dynamic")
    assert row.delta_points == pytest.approx(-2.5) and row.gate_limit_points == 1.0
    assert (row.right_to_wrong, row.wrong_to_right) == (1, 0)
    assert row.mcnemar_p == pytest.approx(0.5) and row.fidelity == pytest.approx(39 / 40)
    assert row.gate_passed is True and row.registrable is True
    assert row.ci_low_points is not None and row.ci_low_points < -1.0 <= row.ci_high_points


def test_a_damaged_variant_fails_its_gate_and_is_not_registrable() -> None:
    row = _table().row("ptq_int8_static")
    assert row.delta_points == pytest.approx(-30.0) and row.right_to_wrong == 12
    assert row.mcnemar_p < 1e-3 and row.ci_high_points < 0
    assert row.gate_passed is False and row.registrable is False


def test_smallest_loss_that_fails_on_40_series() -> None:
    """The documented power of the rule: 4 losses (p = 0.0625) pass, 5 (p = 0.031) fail."""
    gates = GateConfig()
    ref = _ref_pred()
    verdicts = {
        k: gate_verdict("pruned_unstructured", paired_comparison(Y, ref, _pred(n_lost=k)), gates)[2]
        for k in range(7)
    }
    assert verdicts == {0: True, 1: True, 2: True, 3: True, 4: True, 5: False, 6: False}
    # gains offset losses: 6 lost and 3 won back is not a clear loss (p = 0.25)
    assert gate_verdict(
        "pruned_unstructured", paired_comparison(Y, ref, _pred(n_lost=6, n_gained=3)), gates
    )[2]


def test_gate_limit_and_alpha_are_parameters() -> None:
    paired = paired_comparison(Y, _ref_pred(), _pred(n_lost=5))  # -12.5 points, p = 0.031
    assert gate_verdict("qat_4bit", paired, GateConfig())[2] is False
    assert gate_verdict("qat_4bit", paired, GateConfig(qat_4bit=15.0))[2] is True
    assert gate_verdict("qat_4bit", paired, GateConfig(alpha=0.01))[2] is True
    assert gate_verdict("fp32_torch", None, GateConfig()) == ("reference", None, None)
    with pytest.raises(GateError, match="unknown variant name 'int2'"):
        gate_verdict("int2", paired, GateConfig())


def test_mcnemar_exact_values() -> None:
    assert mcnemar_exact_loss_p(0, 0) == 1.0
    assert mcnemar_exact_loss_p(1, 0) == pytest.approx(0.5)
    assert mcnemar_exact_loss_p(5, 0) == pytest.approx(1 / 32)
    assert mcnemar_exact_loss_p(2, 2) == pytest.approx(11 / 16)
    with pytest.raises(ModelingError, match="flip counts must be >= 0"):
        mcnemar_exact_loss_p(-1, 0)


def test_rows_follow_the_variant_order_and_need_the_reference() -> None:
    assert [r.name for r in _table().rows] == [
        "fp32_torch",
        "fp32_onnx",
        "ptq_int8_static",
        "int8_dynamic",
        "qat_4bit",
        "pruned_structured",
    ]
    ref = _table().row("fp32_torch")
    assert ref.gate_passed is None and ref.registrable is False and ref.mcnemar_p is None
    with pytest.raises(ModelingError, match="needs the reference variant 'fp32_torch'"):
        build_comparison([_res("qat_4bit", Y)], GateConfig(), Y)
    with pytest.raises(ModelingError, match="appears twice"):
        build_comparison(
            [_res("fp32_torch", Y, None), _res("fp32_torch", Y, None)], GateConfig(), Y
        )


def test_unknown_variant_name_is_a_clear_error() -> None:
    with pytest.raises(
        ModelingError, match=r"unknown variant name 'int3'; valid names are \['fp32_torch'"
    ):
        _res("int3", Y)


def test_three_forms_agree_and_the_json_round_trips(tmp_path: Path) -> None:
    table = _table()
    write_comparison(table, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "c.json")
    frame = pd.read_csv(tmp_path / "c.csv")
    assert list(frame["name"]) == [r.name for r in table.rows]
    assert {
        "accuracy",
        "delta_points",
        "ci_low_points",
        "ci_high_points",
        "mcnemar_p",
        "fidelity",
        "right_to_wrong",
        "wrong_to_right",
        "size_bytes",
        "p50_ms_b1",
        "gate_passed",
        "onnx_path",
    } <= set(frame.columns)
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["registrable"] == ["fp32_onnx", "int8_dynamic", "qat_4bit", "pruned_structured"]
    assert ComparisonTable.from_json(data) == table
    assert ComparisonTable.load(tmp_path / "c.json") == table
    md = (tmp_path / "c.md").read_text()
    assert "| ptq_int8_static |" in md and "**FAIL**" in md and "McNemar" in md
    assert "| 1 / 0 |" in md  # int8_dynamic's flips
    ref_line = next(line for line in md.splitlines() if line.startswith("| fp32_torch |"))
    assert ref_line.endswith("| – | – | no |")  # not gated, not registrable
    metrics = table.metrics()
    assert metrics["compression.ptq_int8_static.gate_passed"] == {"value": 0.0, "step": 0}
    assert metrics["compression.int8_dynamic.fidelity"]["value"] == pytest.approx(0.975)
    assert "compression.fp32_torch.gate_passed" not in metrics


def test_the_one_parser_names_the_row_and_the_column(tmp_path: Path) -> None:
    good = _table().to_json()
    row = dict(good["variants"][2])
    for bad, needle in [
        ({"rows": []}, "needs a 'variants' list and a 'gates' mapping"),
        ([row], "got list"),
        ({**good, "variants": [{**row, "name": ""}]}, "variants[0] needs a non-empty string"),
        ({**good, "variants": [{**row, "fidelity": "high"}]}, "'fidelity' must be a number"),
        ({**good, "variants": [{**row, "gate_passed": "yes"}]}, "'gate_passed' must be true"),
        ({**good, "variants": [{**row, "registrable": 1}]}, "'registrable' must be true or false"),
        ({**good, "variants": [{**row, "colour": 1}]}, "unknown column 'colour'"),
        (
            {**good, "variants": [{k: v for k, v in row.items() if k != "mcnemar_p"}]},
            "['mcnemar_p']",
        ),
        ({**good, "variants": [row, row]}, "more than once"),
    ]:
        with pytest.raises(ModelingError) as info:
            ComparisonTable.from_json(bad)
        assert needle in str(info.value) and "rpt_compression_comparison" in str(info.value)
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ModelingError, match=r"x\.json"):
        ComparisonTable.load(tmp_path / "x.json")
    parsed = ComparisonTable.from_json(good).row("ptq_int8_static")
    assert isinstance(parsed, ComparisonRow) and parsed.latency == {
        "p50_ms_b1": 0.1,
        "p99_ms_b1": 0.2,
    }
    assert parsed.columns["delta_points"] == pytest.approx(-30.0) and "name" not in parsed.columns
