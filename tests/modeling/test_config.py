"""Strict configuration: errors name the key and list the valid options."""

from __future__ import annotations

import pytest

from sensorops.modeling import CompressionConfig, ExportConfig, ModelingError, parse_config


def test_defaults_match_the_issue() -> None:
    export = parse_config(ExportConfig, {}, "export")
    assert export.parity.atol == 1e-4 and len(export.parity.batch_sizes) >= 2
    comp = parse_config(CompressionConfig, None, "compression")
    assert (comp.gates.ptq_int8, comp.gates.qat_4bit, comp.gates.pruned) == (1.0, 3.0, 1.0)
    assert (
        comp.structured.amount == 0.2 and comp.qat.bits == 4 and comp.latency.batch_sizes == [1, 64]
    )


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (
            ExportConfig,
            {"opset": 12},
            r"export.opset: must be one of \[18, 19, 20, 21, 22, 23\]; got 12",
        ),
        (
            ExportConfig,
            {"parity": {"tol": 1}},
            r"export.parity.tol is not a known key; valid keys are \['atol'",
        ),
        (ExportConfig, {"parity": {"batch_sizes": [4]}}, r"at least two distinct batch sizes"),
        (CompressionConfig, {"variants": ["fp32_torch", "int3"]}, r"got unknown \['int3'\]"),
        (CompressionConfig, {"variants": ["qat_4bit"]}, r"must include 'fp32_torch'"),
        (
            CompressionConfig,
            {"qat": {"opset": 20}},
            r"compression.qat.opset: must be one of \[21, 22, 23\]",
        ),
        (
            CompressionConfig,
            {"gates": {"ptq": 1.0}},
            r"compression.gates.ptq is not a known key; valid keys are",
        ),
        (CompressionConfig, {"structured": {"amount": 1.2}}, r"compression.structured.amount"),
    ],
)
def test_bad_config_errors_name_the_key(model: type, data: dict, message: str) -> None:
    with pytest.raises(ModelingError, match=message):
        parse_config(model, data, model.__name__.removesuffix("Config").lower())


def test_non_mapping_params() -> None:
    with pytest.raises(ModelingError, match="export must be a mapping; got list"):
        parse_config(ExportConfig, [1], "export")  # type: ignore[arg-type]
