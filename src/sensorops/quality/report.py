"""Turn stage results into the reporting outputs: summary, metrics, tags, report, correlation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sensorops.quality.gate import StageResult

_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")


def _metric_name(text: str) -> str:
    return _METRIC_UNSAFE.sub("_", text)


def summary(results: Sequence[StageResult]) -> dict[str, Any]:
    """``{"passed": bool, "stages": {stage: {"passed", "tiers": {"tier1": {success, action, evaluated, failed, ...}}}}}``.

    ``passed`` is false when any ``fail`` tier failed; ``warnings`` lists failed ``warn`` tiers as
    ``"<stage>.tier<n>"``.
    """
    stages = {r.stage: r.to_dict() for r in results}
    warnings = [f"{r.stage}.tier{t.tier}" for r in results for t in r.warnings]
    return {
        "passed": all(r.passed for r in results),
        "warnings": warnings,
        "stages": stages,
    }


def metrics(results: Sequence[StageResult]) -> dict[str, dict[str, float | int]]:
    """Per stage and tier: success (1/0), evaluated, failed, and the key statistics.

    Returns:
        ``{"raw.tier1.success": {"value": 1.0, "step": 0}, ...}``, the input format of
        kedro-mlflow's ``MlflowMetricsHistoryDataset``.
    """
    out: dict[str, dict[str, float | int]] = {}
    for result in results:
        for tier in result.tiers:
            prefix = f"{result.stage}.tier{tier.tier}"
            values: dict[str, float] = {
                "success": 1.0 if tier.success else 0.0,
                "evaluated": float(tier.evaluated),
                "failed": float(len(tier.failures)),
                "seconds": float(tier.seconds),
            }
            values.update(tier.statistics)
            for key, value in values.items():
                out[_metric_name(f"{prefix}.{key}")] = {"value": float(value), "step": 0}
    return out


def tags(results: Sequence[StageResult]) -> dict[str, str]:
    """MLflow tags: ``data_quality.<stage>.tier<n>`` = ``passed`` | ``failed`` | ``warn_failed``,
    ``data_quality.passed`` and ``data_quality.warnings`` (comma-separated failed warn tiers)."""
    out: dict[str, str] = {}
    warned: list[str] = []
    for result in results:
        for tier in result.tiers:
            if tier.success:
                status = "passed"
            elif tier.action == "warn":
                status = "warn_failed"
                warned.append(f"{result.stage}.tier{tier.tier}")
            else:
                status = "failed"
            out[f"data_quality.{result.stage}.tier{tier.tier}"] = status
    out["data_quality.passed"] = str(all(r.passed for r in results)).lower()
    out["data_quality.warnings"] = ",".join(warned) if warned else "none"
    return out


def validation_report(results: Sequence[StageResult]) -> dict[str, Any]:
    """The full GE validation results per stage and suite (JSON-serialisable)."""
    return {r.stage: {v["suite"]: v["result"] for v in r.validation_results} for r in results}


def correlation_table(results: Sequence[StageResult]) -> pd.DataFrame:
    """The channel correlation matrices of all stages, stacked, with a leading ``stage`` column."""
    parts = []
    for r in results:
        if r.correlation is None or r.correlation.empty:
            continue
        part = r.correlation.rename(columns={"key": "channel"})
        part.insert(0, "stage", r.stage)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["stage", "channel"])
    return pd.concat(parts, ignore_index=True)


def data_docs_dir(results: Sequence[StageResult]) -> str | None:
    """The folder of the Data Docs site the stages built (the last one built holds all)."""
    for r in reversed(results):
        if r.data_docs_index:
            return str(Path(r.data_docs_index).parent)
    return None
