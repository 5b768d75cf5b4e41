"""The registry's data-quality gate refuses DQ results that were made from other data."""

from __future__ import annotations

from sensorops.registry.gates import data_quality_gate
from sensorops.registry.lineage import dq_tags


def _tags(validated: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    tags = dq_tags({"passed": True, "stages": {}, "model_input_digests": validated})
    tags.update({f"data.{split}_digest": digest for split, digest in current.items()})
    return tags


def test_matching_digests_pass() -> None:
    digests = {"train": "a" * 16, "val": "b" * 16, "test": "c" * 16}
    assert data_quality_gate(_tags(digests, digests)).passed


def test_stale_results_are_refused_with_the_split_named() -> None:
    validated = {"train": "a" * 16, "val": "b" * 16, "test": "c" * 16}
    result = data_quality_gate(_tags(validated, {**validated, "test": "d" * 16}))
    assert not result.passed
    assert result.numbers["stale_splits"] == ["test"]
    assert "other data" in result.message
