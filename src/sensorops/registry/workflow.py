"""The two steps of the ``promotion`` pipeline: register the pipeline's models, stage one of them.

Both read the active MLflow run (kedro-mlflow's) and its tracking URI; nodes call them with
plain dicts and never import mlflow.
"""

from __future__ import annotations

import logging
from typing import Any

from sensorops.contracts.preprocessing import PreprocessingState
from sensorops.faultpoints import kill_point
from sensorops.model_input import ModelInput
from sensorops.registry.client import Registry, connect
from sensorops.registry.config import PromotionConfig
from sensorops.registry.errors import GateRefused, RegistryConfigError
from sensorops.registry.register import (
    ComparisonRow,
    build_variants,
    lineage_tags,
    register_variants,
    verify_lineage,
)
from sensorops.registry.transitions import promote, read_state

logger = logging.getLogger(__name__)


def register_from_reports(
    export_summary: dict[str, Any],
    comparison: list[ComparisonRow],
    dq_summary: dict[str, Any],
    evaluation: dict[str, Any] | None,
    mi: ModelInput,
    config: PromotionConfig,
    training_summary: dict[str, Any] | None = None,
    reg: Registry | None = None,
    preprocessing: PreprocessingState | None = None,
) -> dict[str, Any]:
    """Register the parity-checked export and every compression variant whose gate passed.

    ``comparison`` is ``rpt_compression_comparison`` parsed by
    :func:`~sensorops.registry.register.parse_comparison`. All or nothing: see
    :func:`~sensorops.registry.register.register_variants`.

    Returns:
        ``{"model_name": str, "tracking_uri": str, "versions": [RegisteredVersion.to_dict(), ...]}``.
    """
    reg = reg or connect(None)
    verify_lineage(export_summary, comparison, training_summary, evaluation)
    specs = build_variants(export_summary, comparison, evaluation, config)
    common = lineage_tags(export_summary, dq_summary, training_summary)
    created = register_variants(
        specs, mi, config.model_name, common, reg=reg, config=config, preprocessing=preprocessing
    )
    kill_point("promotion.after_register")
    return {
        "model_name": config.model_name,
        "tracking_uri": reg.uri,
        "versions": [rv.to_dict() for rv in created],
    }


def stage_registered(
    registered: dict[str, Any],
    mi: ModelInput,
    config: PromotionConfig,
    reg: Registry | None = None,
) -> dict[str, Any]:
    """Promote the ``config.staging_variant`` version of ``registered`` to ``staging`` through the gates.

    A rerun that registered nothing new finds the version already holding staging (or
    production) and reports ``already_staging`` / ``already_production`` instead of promoting.

    Returns:
        The ``rpt_promotion`` report: ``status`` (``staged``, ``refused``, ``already_staging``
        or ``already_production``), ``version``, ``archived`` (the previous staging holder), the gate
        report, the registered versions, and the model's aliases/stages afterwards.

    Raises:
        GateRefused: refused and ``config.fail_on_refusal`` is true.
        RegistryConfigError: no registered version has variant ``config.staging_variant``.
    """
    reg = reg or connect(None)
    name = registered["model_name"]
    chosen = [v for v in registered["versions"] if v["variant"] == config.staging_variant]
    if not chosen:
        raise RegistryConfigError(
            f"promotion.staging_variant {config.staging_variant!r} was not registered; registered "
            f"variants are {[v['variant'] for v in registered['versions']]}"
        )
    version = chosen[0]["version"]
    report: dict[str, Any] = {"model_name": name, "version": version, "target": "staging"}
    before = read_state(reg, name)
    held = before.versions[version].stage if version in before.versions else None
    if held in ("staging", "production") and before.aliases.get(held) == version:
        # a rerun on the same artifact: that version already holds the stage
        logger.warning("%s v%s is already in %s; nothing to stage", name, version, held)
        report.update(status=f"already_{held}", gates={}, evidence_run_id=None, seq=None)
    else:
        report.update(_stage(reg, name, version, mi, config))
    kill_point("promotion.after_stage")
    state = read_state(reg, name)
    report["registered"] = registered["versions"]
    report["aliases"] = state.aliases
    report["stages"] = {
        v: s.stage for v, s in sorted(state.versions.items(), key=lambda kv: int(kv[0]))
    }
    return report


def _stage(
    reg: Registry, name: str, version: str, mi: ModelInput, config: PromotionConfig
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    try:
        result = promote(
            reg, name, version, "staging", config=config, mi=mi, reason="promotion pipeline"
        )
        report.update(
            status="staged",
            gates=result.gates,
            evidence_run_id=result.evidence_run_id,
            seq=result.seq,
            archived=result.replaced,
        )
    except GateRefused as exc:
        now = read_state(reg, name)
        if exc.gate == "stage_order" and now.aliases.get("staging") == version:
            # a run of another checkout staged the same version while we waited for the lease
            logger.warning("%s v%s was staged meanwhile by another run", name, version)
            report.update(status="already_staging", gates={}, evidence_run_id=None, seq=None)
            return report
        if config.fail_on_refusal:
            raise
        logger.warning("%s", exc)
        report.update(status="refused", refused_by=exc.gate, message=str(exc), gates=exc.report)
    return report
