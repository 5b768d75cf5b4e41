"""``rpt_dq_summary``: what the data-quality gate found, and the one rule that trusts it.

The rule "data quality passed **and** was made from this very data" lives here only
(:meth:`DataQualitySummary.verdict`). Training applies it to the summary file, the registry's
promotion gate to the version tags the summary was turned into (:meth:`DataQualitySummary.to_tags`
and :meth:`DataQualitySummary.from_tags`): both give the same answer for the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sensorops.contracts.base import Artifact

SPLITS: tuple[str, ...] = ("train", "val", "test")


class TierSummary(BaseModel):
    """One tier of one stage: ``success``, its ``action`` and the counts (details kept as extras)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    success: bool
    action: str = "fail"
    evaluated: int | None = None
    failed: int | None = None

    @property
    def status(self) -> str:
        """``pass``, ``fail:fail`` or ``fail:warn`` (the version-tag value)."""
        return "pass" if self.success else f"fail:{self.action}"


class StageSummary(BaseModel):
    """One stage (``raw`` or ``model_input``): whether it passed, and its tiers."""

    model_config = ConfigDict(extra="allow", frozen=True)
    passed: bool | None = None
    data_docs_index: str | None = None
    tiers: dict[str, TierSummary] = Field(default_factory=dict)


@dataclass(frozen=True)
class DataQualityVerdict:
    """The outcome of :meth:`DataQualitySummary.verdict`."""

    passed: bool
    recorded: bool | None
    """``passed`` as the summary recorded it (``None``: nothing was recorded)."""
    failing: list[str] = field(default_factory=list)
    """``<stage>.<tier>`` of every failed tier with ``action: fail``."""
    warned: list[str] = field(default_factory=list)
    """``<stage>.<tier>`` of every failed tier with ``action: warn``."""
    stale_splits: list[str] = field(default_factory=list)
    """Splits whose validated digest differs from the data at hand."""


class DataQualitySummary(Artifact):
    """``rpt_dq_summary``: ``{"passed", "warnings", "stages": {stage: {...}}, "model_input_digests"}``."""

    artifact: ClassVar[str] = "rpt_dq_summary"
    passed: bool | None = None
    warnings: list[str] = Field(default_factory=list)
    stages: dict[str, StageSummary] = Field(default_factory=dict)
    model_input_digests: dict[str, str] | None = None
    """Per-split content digests of the validated model input
    (:func:`sensorops.model_input.model_input_digests`)."""

    @model_validator(mode="before")
    @classmethod
    def _flat_stages(cls, data: Any) -> Any:
        """Accept the flat shape ``{"passed": ..., "raw": {"tier1": {"success": ...}}}`` too."""
        if not isinstance(data, Mapping) or "stages" in data:
            return data
        flat = {
            key: value
            for key, value in data.items()
            if isinstance(value, Mapping)
            and value
            and all(
                isinstance(t, Mapping) and isinstance(t.get("success"), bool)
                for t in value.values()
            )
        }
        if not flat:
            return data
        rest = {k: v for k, v in data.items() if k not in flat}
        return {**rest, "stages": {k: {"tiers": dict(v)} for k, v in flat.items()}}

    def tiers(self) -> dict[str, TierSummary]:
        """Every tier keyed ``<stage>.<tier>`` (``raw.tier1``)."""
        return {
            f"{stage}.{name}": tier
            for stage, result in self.stages.items()
            for name, tier in result.tiers.items()
        }

    def data_docs_indexes(self) -> list[str]:
        """The Data Docs index pages the stages built (sorted, no duplicates)."""
        return sorted({s.data_docs_index for s in self.stages.values() if s.data_docs_index})

    def verdict(
        self, current_digests: Mapping[str, str] | None, *, require_digests: bool = True
    ) -> DataQualityVerdict:
        """The one rule: passed, no ``fail`` tier failed, and made from data with these digests.

        Args:
            current_digests: per-split digests of the data at hand.
            require_digests: a summary that recorded no digests is stale (training); ``False``
                trusts it (registry versions registered before digests were recorded).
        """
        tiers = self.tiers()
        failing = sorted(k for k, t in tiers.items() if t.status == "fail:fail")
        warned = sorted(k for k, t in tiers.items() if t.status == "fail:warn")
        current = dict(current_digests or {})
        validated = self.model_input_digests
        if validated is None:
            stale = (sorted(current) or list(SPLITS)) if require_digests else []
        else:
            stale = sorted(
                s for s in set(validated) | set(current) if validated.get(s) != current.get(s)
            )
        ok = self.passed is True and not failing and not stale
        return DataQualityVerdict(ok, self.passed, failing, warned, stale)

    def to_tags(self) -> dict[str, str]:
        """Version tags: ``dq.passed``, ``dq.validated_<split>_digest``, ``dq.<stage>.<tier>``."""
        tags = {"dq.passed": str(bool(self.passed)).lower()}
        for split, digest in (self.model_input_digests or {}).items():
            tags[f"dq.validated_{split}_digest"] = str(digest)
        for path, tier in self.tiers().items():
            counts = [
                f"{k}={getattr(tier, k)}"
                for k in ("evaluated", "failed")
                if k in tier.model_fields_set
            ]
            tags[f"dq.{path}"] = tier.status + (f" ({', '.join(counts)})" if counts else "")
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> DataQualitySummary:
        """Rebuild the facts :meth:`to_tags` wrote (the counts are not needed by the rule)."""
        recorded = tags.get("dq.passed")
        digests = {
            s: tags[f"dq.validated_{s}_digest"]
            for s in SPLITS
            if f"dq.validated_{s}_digest" in tags
        }
        stages: dict[str, dict[str, Any]] = {}
        for key, value in tags.items():
            parts = key.split(".", 2)
            if len(parts) != 3 or parts[0] != "dq" or not value.startswith(("pass", "fail:")):
                continue
            status = value.split(" ", 1)[0]
            tier = {"success": status == "pass", "action": status.partition(":")[2] or "fail"}
            stages.setdefault(parts[1], {"tiers": {}})["tiers"][parts[2]] = tier
        return cls.from_dict(
            {
                "passed": None if recorded is None else recorded == "true",
                "stages": stages,
                "model_input_digests": digests or None,
            }
        )
