"""Compression trade-off figure."""

from __future__ import annotations

import pytest

from sensorops.modeling import ModelingError
from sensorops.modeling.plots import compression_tradeoffs_figure, latency_batch_size


def _row(name: str, acc: float, size: int, p50: float, gate: bool | None) -> dict:
    return {
        "name": name,
        "accuracy": acc,
        "size_bytes": size,
        "p50_ms_b1": p50,
        "p50_ms_b64": p50 * 10,
        "gate_passed": gate,
    }


def test_points_per_variant_and_failed_gates_marked() -> None:
    rows = [
        _row("fp32_torch", 0.9, 4096, 1.0, None),
        _row("int8_dynamic", 0.88, 1024, 0.5, False),
    ]
    fig = compression_tradeoffs_figure(rows)
    size_ax, lat_ax = fig.axes
    assert [c.get_offsets().tolist() for c in size_ax.collections] == [[[4.0, 0.9]], [[1.0, 0.88]]]
    assert [c.get_offsets().tolist() for c in lat_ax.collections] == [[[1.0, 0.9]], [[0.5, 0.88]]]
    assert lat_ax.get_xlabel() == "p50 latency, batch 1 (ms)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["fp32_torch", "int8_dynamic (gate failed)"]
    # gate failure drawn with another marker than a pass
    paths = [c.get_paths()[0].vertices.tolist() for c in size_ax.collections]
    assert paths[0] != paths[1]


def test_latency_batch_is_the_smallest_common_one() -> None:
    assert latency_batch_size([{"p50_ms_b64": 1.0, "p50_ms_b1": 0.1}, {"p50_ms_b64": 2.0}]) == 64
    assert latency_batch_size([{"accuracy": 1.0}]) is None


def test_bad_rows_are_errors() -> None:
    with pytest.raises(ModelingError, match="no variants"):
        compression_tradeoffs_figure([])
    with pytest.raises(ModelingError, match=r"'x' lacks \['size_bytes'\]"):
        compression_tradeoffs_figure([{"name": "x", "accuracy": 0.5}])
