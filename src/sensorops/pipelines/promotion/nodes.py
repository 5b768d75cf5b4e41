"""Thin Kedro nodes over :mod:`sensorops.registry`; MLflow is used by the library, not here."""

from __future__ import annotations

from typing import Any

from sensorops.contracts.preprocessing import PreprocessingState
from sensorops.model_input import ModelInput
from sensorops.registry import PromotionConfig, parse_comparison
from sensorops.registry.workflow import register_from_reports, stage_registered


def register_models(
    export_summary: dict[str, Any],
    compression_comparison: dict[str, Any],
    dq_summary: dict[str, Any],
    evaluation: dict[str, Any],
    training_summary: dict[str, Any],
    model_input: ModelInput,
    params: dict[str, Any],
    outlier_model: dict[str, Any] | None = None,
    dtw_references: dict[str, Any] | None = None,
    normalization_stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register the parity-checked ONNX export and the compression variants that passed their gate.

    With the ingestion artifacts (``mdl_outlier_filter``, ``mdl_dtw_references``,
    ``mdl_normalization_stats``) every version is the self-contained pyfunc model (ONNX plus
    :class:`~sensorops.contracts.preprocessing.PreprocessingState`), servable on raw series.

    Returns:
        ``{"model_name", "tracking_uri", "versions": [{name, version, variant, run_id, model_uri,
        test_accuracy, test_macro_f1}, ...]}``; every version starts in stage ``candidate``.
        All or nothing: when one variant fails, the versions made so far are deleted again.
    """
    config = PromotionConfig.from_params(params)
    comparison = parse_comparison(compression_comparison)
    preprocessing = None
    if dtw_references is not None and normalization_stats is not None:
        preprocessing = PreprocessingState.from_artifacts(
            outlier_model, dtw_references, normalization_stats, model_input.classes,
            model_input.channels,
        )  # fmt: skip
    return register_from_reports(
        export_summary,
        comparison,
        dq_summary,
        evaluation,
        model_input,
        config,
        training_summary=training_summary,
        preprocessing=preprocessing,
    )


def promote_to_staging(
    registered: dict[str, Any],
    model_input: ModelInput,
    params: dict[str, Any],
    serving: dict[str, Any] | None = None,
    raw_long: Any = None,
) -> dict[str, Any]:
    """Promote the ``promotion.staging_variant`` version to staging through the gates.

    With ``serving.infra_check.enabled`` the version is first served in a sandbox and checked
    (:mod:`sensorops.serving.infra_check`); a failed check refuses the promotion with its numbers.

    Returns:
        The ``rpt_promotion`` report (``status`` is ``staged`` or ``refused``, with every gate's
        numbers).
    """
    config = PromotionConfig.from_params(params)
    if raw_long is not None:
        from sensorops.serving.infra_check import check_before_staging

        infra = check_before_staging(registered, config.staging_variant, raw_long, serving)
        if infra is not None and not infra.passed:
            if config.fail_on_refusal:
                raise RuntimeError(infra.message())
            return {"model_name": registered["model_name"], "target": "staging",
                    "version": infra.version, "status": "refused", "refused_by": "infra_check",
                    "message": infra.message(), "infra_check": infra.to_dict(),
                    "registered": registered["versions"]}  # fmt: skip
        report = stage_registered(registered, model_input, config)
        if infra is not None:
            report["infra_check"] = infra.to_dict()
        return report
    return stage_registered(registered, model_input, config)
