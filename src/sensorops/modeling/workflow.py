"""End-to-end steps the Kedro nodes call: export a checkpoint, and build the compression table.

Both take the training checkpoint path and the :class:`~sensorops.model_input.ModelInput`;
neither imports Kedro or MLflow.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sensorops.architectures import ModelSpec, count_parameters, load_checkpoint_model
from sensorops.model_input import ModelInput
from sensorops.modeling.comparison import ComparisonTable, VariantResult, build_comparison
from sensorops.modeling.config import CompressionConfig, ExportConfig, FinetuneConfig
from sensorops.modeling.errors import ExportError, ModelingError
from sensorops.modeling.finetune import FinetuneReport, finetune, planned_steps
from sensorops.modeling.latency import measure_ort_latency, measure_torch_latency
from sensorops.modeling.metrics import (
    classification_scores,
    file_sha256,
    file_size,
    state_dict_bytes,
    weight_sparsity,
)
from sensorops.modeling.onnx_export import export_onnx
from sensorops.modeling.parity import ParityReport, check_parity, torch_logits
from sensorops.modeling.pruning import MagnitudePruner, cubic_sparsity, structured_prune
from sensorops.modeling.ptq import quantize_dynamic_int8, quantize_static_int8, sample_calibration
from sensorops.modeling.qat import (
    WeightFakeQuantizer,
    ort_optimized_op_counts,
    quantize_onnx_weights_4bit,
)
from sensorops.modeling.runtime import create_session
from sensorops.modeling.weight_swap import WeightSwapTemplate

logger = logging.getLogger(__name__)


def checkpoint_from_summary(training_summary: Mapping[str, Any]) -> str:
    """The ``best_checkpoint`` path named by ``mdl_training_summary``.

    Raises:
        ModelingError: the key is missing (lists the keys present) or the file does not exist.
    """
    if not isinstance(training_summary, Mapping) or "best_checkpoint" not in training_summary:
        keys = (
            sorted(training_summary)
            if isinstance(training_summary, Mapping)
            else type(training_summary).__name__
        )
        raise ModelingError(f"mdl_training_summary lacks 'best_checkpoint'; got keys {keys}")
    path = Path(str(training_summary["best_checkpoint"]))
    if not path.is_file():
        raise ModelingError(
            f"checkpoint {path} named by mdl_training_summary.best_checkpoint does not exist; "
            "run `kedro run --pipelines=training` first"
        )
    recorded = training_summary.get("best_checkpoint_sha256")
    if recorded and file_sha256(path) != recorded:
        raise ModelingError(
            f"checkpoint {path} has sha256 {file_sha256(path)}, but mdl_training_summary "
            f"recorded {recorded}: the file changed after training finished (an interrupted "
            "retrain?); run `kedro run --pipelines=training` to finish training first"
        )
    return str(path)


def load_model_for(checkpoint: str, mi: ModelInput) -> tuple[nn.Module, ModelSpec]:
    """Load the checkpoint and check it fits the model input (channels, classes)."""
    model, spec, _ = load_checkpoint_model(checkpoint)
    if spec.n_channels != mi.n_channels or spec.n_classes != mi.n_classes:
        raise ModelingError(
            f"checkpoint {checkpoint} expects {spec.n_channels} channels and {spec.n_classes} classes, but "
            f"mi_model_input has {mi.n_channels} channels {list(mi.channels)} and {mi.n_classes} classes"
        )
    return model, spec


def _eval_split(mi: ModelInput) -> tuple[str, np.ndarray, np.ndarray]:
    for split in ("test", "val"):
        if len(mi.y[split]):
            return split, mi.X[split], mi.y[split]
    raise ModelingError("mi_model_input has empty test and val splits; nothing to evaluate on")


def _train_split(mi: ModelInput) -> tuple[np.ndarray, np.ndarray]:
    if len(mi.y["train"]) == 0:
        raise ModelingError(
            "mi_model_input has an empty train split; calibration and fine-tuning need it"
        )
    return mi.X["train"], mi.y["train"]


def _example(X: np.ndarray) -> torch.Tensor:
    x = X[:2] if len(X) >= 2 else np.concatenate([X, X])[:2]
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# export


def export_checkpoint(checkpoint: str, mi: ModelInput, config: ExportConfig) -> dict[str, Any]:
    """Export the checkpoint to ONNX and check parity; returns ``mdl_export_summary``.

    Returns:
        ``{"onnx_path", "opset", "size_bytes", "dynamic_axes", "model_name", "checkpoint",
        "checkpoint_sha256", "parity_passed", "parity_atol", "parity_max_abs_diff", "parity_pred_mismatches",
        "parity_batch_sizes", "parity_n_series", "parity_split", "execution_provider",
        "execution_providers_requested", "onnx_parity_accuracy", "onnx_parity_macro_f1"}`` (scores of the ONNX model on
        the parity series only: a consistency check, not a test accuracy).

    Raises:
        ParityError: outputs differ beyond ``config.parity.atol`` or predicted classes differ
            (the message has the numbers).
    """
    model, spec = load_model_for(checkpoint, mi)
    split, X, y = _eval_split(mi)
    X = X[: config.parity.max_series]
    y = y[: config.parity.max_series]
    path = Path(config.output_dir) / config.file_name
    result = export_onnx(
        model, _example(X), path, opset=config.opset, dynamic_time=config.dynamic_time
    )
    session = create_session(path, config.runtime.providers, config.runtime.intra_op_threads)
    report = check_parity(model, session, X, config.parity.batch_sizes, config.parity.atol)
    report.raise_if_failed(f"{spec.name} ({path})")
    scores = classification_scores(y, session.predict_logits(X), mi.n_classes)
    summary = {
        "onnx_path": result.onnx_path,
        "opset": result.opset,
        "size_bytes": result.size_bytes,
        "dynamic_axes": {str(k): v for k, v in result.dynamic_axes.items()},
        "model_name": spec.name,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "onnx_sha256": file_sha256(result.onnx_path),
        "parity_passed": report.passed,
        "parity_atol": report.atol,
        "parity_max_abs_diff": report.worst_abs_diff,
        "parity_max_abs_diff_by_batch": {str(k): v for k, v in report.max_abs_diff.items()},
        "parity_pred_mismatches": int(sum(report.pred_mismatches.values())),
        "parity_batch_sizes": [int(b) for b in config.parity.batch_sizes],
        "parity_n_series": report.n_series,
        "parity_split": split,
        "execution_provider": session.provider,
        "execution_providers_requested": list(session.requested),
        "onnx_parity_accuracy": scores["accuracy"],
        "onnx_parity_macro_f1": scores["macro_f1"],
    }
    logger.info(
        "export of %s passed parity (max |diff| %.2e <= %.0e) on %s",
        spec.name,
        report.worst_abs_diff,
        report.atol,
        session.provider,
    )
    return summary


# ---------------------------------------------------------------------------------------------
# compression


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Context:
    """What every variant step needs; built once per compression run."""

    def __init__(
        self, model: nn.Module, spec: ModelSpec, mi: ModelInput, config: CompressionConfig
    ) -> None:
        self.model = model
        self.spec = spec
        self.mi = mi
        self.config = config
        self.split, self.X_eval, self.y_eval = _eval_split(mi)
        self.X_train, self.y_train = _train_split(mi)
        self.X_val, self.y_val = mi.X["val"], mi.y["val"]
        self.out_dir = Path(config.output_dir)
        # the fp32 teacher's logits of the training split, for every distilled fine-tune
        self.teacher_train = torch_logits(model, self.X_train)
        self.template: WeightSwapTemplate | None = None
        self.template_error: str | None = None

    def latency_ort(self, path: Path) -> dict[str, float]:
        lat = self.config.latency
        session = create_session(path, self.config.runtime.providers, lat.threads)
        out: dict[str, float] = {}
        for b in lat.batch_sizes:
            stats = measure_ort_latency(session, self.X_eval, b, lat.n_warmup, lat.n_iter)
            out.update(_latency_columns(stats, b))
        return out

    def latency_torch(self, model: nn.Module) -> dict[str, float]:
        lat = self.config.latency
        out: dict[str, float] = {}
        with _torch_threads(lat.threads):
            for b in lat.batch_sizes:
                stats = measure_torch_latency(model, self.X_eval, b, lat.n_warmup, lat.n_iter)
                out.update(_latency_columns(stats, b))
        return out

    def parity(self, path: Path, torch_model: nn.Module, atol: float) -> ParityReport:
        session = create_session(
            path, self.config.runtime.providers, self.config.runtime.intra_op_threads
        )
        cfg = self.config.parity
        X = self.X_eval[: cfg.max_series]
        report = check_parity(torch_model, session, X, cfg.batch_sizes, atol)
        return report

    def onnx_result(
        self,
        name: str,
        path: Path,
        torch_model: nn.Module,
        notes: str = "",
        finetune_steps: int = 0,
    ) -> VariantResult:
        session = create_session(
            path, self.config.runtime.providers, self.config.runtime.intra_op_threads
        )
        logits = session.predict_logits(self.X_eval)
        scores = classification_scores(self.y_eval, logits, self.mi.n_classes)
        return VariantResult(
            name=name,
            runtime="onnxruntime",
            onnx_path=str(path),
            execution_provider=session.provider,
            accuracy=scores["accuracy"],
            macro_f1=scores["macro_f1"],
            size_bytes=file_size(path),
            params=count_parameters(torch_model),
            sparsity=weight_sparsity(torch_model),
            predictions=logits.argmax(axis=1),
            latency=self.latency_ort(path),
            finetune_steps=finetune_steps,
            notes=notes,
        )

    def export(self, model: nn.Module, name: str, opset: int | None = None) -> Path:
        path = self.out_dir / f"{name}.onnx"
        export_onnx(model, _example(self.X_eval), path, opset=opset or self.config.opset)
        return path

    def write_same_shape(
        self, model: nn.Module, name: str, dst: Path, atol: float
    ) -> tuple[Path, str]:
        """``model``'s ONNX file at ``dst``: weights swapped into the fp32 template when the
        template exists and the result passes parity, else a fresh export. Returns the path and
        how it was made."""
        if self.template is not None and self.config.weight_swap:
            try:
                self.template.write(model, dst)
                report = self.parity(dst, model, atol)
                if report.passed:
                    return dst, "weights swapped into the exported fp32 graph"
                logger.warning(
                    "weight swap for %s failed parity (max |diff| %.2e); exporting instead",
                    name,
                    report.worst_abs_diff,
                )
            except ExportError as exc:
                logger.warning("weight swap for %s refused (%s); exporting instead", name, exc)
        export_onnx(model, _example(self.X_eval), dst, opset=onnx_opset_of(self.template_path))
        return dst, "fresh dynamo export"

    @property
    def template_path(self) -> Path | None:
        return self.template.path if self.template is not None else None


def onnx_opset_of(path: Path | None, default: int = 20) -> int:
    if path is None:
        return default
    import onnx

    from sensorops.modeling.onnx_export import onnx_opset

    return onnx_opset(onnx.load(str(path), load_external_data=False))


def convert_opset(path: Path, opset: int) -> None:
    """Rewrite ``path`` in place at ``opset`` with ONNX's version converter (checked)."""
    import onnx
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(onnx.load(str(path)), opset)
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:
        raise ExportError(f"cannot convert {path} to opset {opset}: {exc}") from exc
    onnx.save(converted, str(path))


def _finetune(
    ctx: _Context, model: nn.Module, cfg: FinetuneConfig, **kwargs: Any
) -> FinetuneReport:
    return finetune(
        model,
        ctx.X_train,
        ctx.y_train,
        cfg,
        teacher_logits=ctx.teacher_train,
        X_val=ctx.X_val,
        y_val=ctx.y_val,
        **kwargs,
    )


def _fp32_torch(ctx: _Context) -> VariantResult:
    logits = torch_logits(ctx.model, ctx.X_eval)
    scores = classification_scores(ctx.y_eval, logits, ctx.mi.n_classes)
    return VariantResult(
        name="fp32_torch",
        runtime="torch",
        onnx_path=None,
        execution_provider="torch-cpu-eager",
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        size_bytes=state_dict_bytes(ctx.model),
        params=count_parameters(ctx.model),
        sparsity=weight_sparsity(ctx.model),
        predictions=logits.argmax(axis=1),
        latency=ctx.latency_torch(ctx.model),
        notes=f"reference ({ctx.spec.name}); size = torch state_dict bytes",
    )


def _checked(ctx: _Context, path: Path, model: nn.Module, atol: float, what: str) -> str:
    report = ctx.parity(path, model, atol)
    report.raise_if_failed(f"{what} ({path})")
    return f"parity vs torch max |diff| {report.worst_abs_diff:.1e} <= {atol:.0e}"


def _qat_4bit(ctx: _Context) -> VariantResult:
    cfg = ctx.config.qat
    model = copy.deepcopy(ctx.model)
    fq = WeightFakeQuantizer(bits=cfg.bits).fit(model)
    calib = sample_calibration(ctx.X_train, cfg.calibration_samples, ctx.config.calibration.seed)
    fq.calibrate(model, calib, cfg.clip_ratios)
    ft = _finetune(ctx, model, cfg.finetune, step_context=fq.quantized_forward)
    fq.finalize()
    path = ctx.out_dir / "qat_4bit.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "qat_grid_fp32.onnx"
        how = "fresh dynamo export"
        if ctx.template is not None and ctx.config.weight_swap:
            grid, how = ctx.write_same_shape(model, "qat_4bit", grid, ctx.config.parity.atol)
            if onnx_opset_of(grid) < cfg.opset:
                try:
                    convert_opset(grid, cfg.opset)
                    how += f", opset converted to {cfg.opset}"
                except ExportError as exc:
                    logger.warning("%s; exporting the QAT model at opset %d", exc, cfg.opset)
                    how = "fresh dynamo export"
        if how == "fresh dynamo export":
            export_onnx(model, _example(ctx.X_eval), grid, opset=cfg.opset)
        report = quantize_onnx_weights_4bit(grid, path, weights=fq.weight_arrays(), names=fq.names_)
    parity = _checked(ctx, path, model, ctx.config.parity.atol_4bit, "qat_4bit")
    ops = ort_optimized_op_counts(path)
    notes = (
        f"weight-only 4-bit: {len(fq.names_)} weight matrices fake-quantized uint4 asymmetric per "
        f"output channel (ranges calibrated on {len(calib)} training series: clip ratios "
        f"{fq.clip_summary()}), fine-tuned {ft.summary()} distilled from fp32; stored as UINT4 + "
        f"DequantizeLinear ({report.n_weights_4bit} values, {len(report.quantized)} initializers, "
        f"kept fp32: {report.kept_fp32 or 'none'}); biases, norms and activations fp32; ORT runs "
        f"MatMulNBits x{ops.get('MatMulNBits', 0)}, DequantizeLinear x{ops.get('DequantizeLinear', 0)}; "
        f"graph: {how}; {parity}"
    )
    return ctx.onnx_result("qat_4bit", path, model, notes, ft.steps_taken)


def _pruned_structured(ctx: _Context) -> VariantResult:
    cfg = ctx.config.structured
    model = copy.deepcopy(ctx.model)
    params_before = count_parameters(model)
    steps = 0
    parts = []
    # iterative: remove the same share of the *remaining* units each round so that the kept
    # share after all rounds is (1 - amount)
    per_round = 1.0 - (1.0 - cfg.amount) ** (1.0 / cfg.iterations)
    report = None
    for it in range(cfg.iterations):
        report = structured_prune(model, per_round)
        ft = _finetune(ctx, model, cfg.finetune)
        steps += ft.steps_taken
        parts.append(f"round {it + 1}: {ft.summary()}")
    assert report is not None
    path = ctx.export(model, "pruned_structured")
    parity = _checked(ctx, path, model, ctx.config.parity.atol, "pruned_structured")
    groups = ", ".join(f"{g.module} ->{g.units_after}" for g in report.groups)
    params_after = count_parameters(model)
    notes = (
        f"L2 structured in {cfg.iterations} rounds to {cfg.amount:.0%} units removed ({groups}); "
        f"params {params_before} -> {params_after} ({1 - params_after / params_before:.1%} "
        f"removed); distilled fine-tune after each round ({'; '.join(parts)}); {parity}"
    )
    return ctx.onnx_result("pruned_structured", path, model, notes, steps)


def _pruned_unstructured(ctx: _Context) -> VariantResult:
    cfg = ctx.config.unstructured
    model = copy.deepcopy(ctx.model)
    pruner = MagnitudePruner(cfg.sparsity).fit(model, initial_sparsity=0.0)
    total, _ = planned_steps(len(ctx.X_train), cfg.finetune)
    ramp_end = max(1, int(round(cfg.ramp_fraction * total)))

    def grow(step: int, total_steps: int) -> None:
        if step <= ramp_end and (step % cfg.prune_every_steps == 0 or step == ramp_end):
            pruner.update(cubic_sparsity(step, total_steps, cfg.sparsity, cfg.ramp_fraction))
        else:
            pruner.apply()

    ft = _finetune(ctx, model, cfg.finetune, after_step=grow, select_from_step=ramp_end)
    if pruner.current_sparsity_ < cfg.sparsity - 1e-6:  # stopped before the ramp ended
        pruner.update(cfg.sparsity)
    path, how = ctx.write_same_shape(
        model,
        "pruned_unstructured",
        ctx.out_dir / "pruned_unstructured.onnx",
        ctx.config.parity.atol,
    )
    parity = _checked(ctx, path, model, ctx.config.parity.atol, "pruned_unstructured")
    notes = (
        f"global magnitude pruning of all weight matrices to {cfg.sparsity:.0%} zeros on Zhu & "
        f"Gupta's cubic ramp over the first {ramp_end} steps, fine-tuned {ft.summary()} distilled "
        f"from fp32 with masks kept; the ONNX file is dense (zeros stored); graph: {how}; {parity}"
    )
    return ctx.onnx_result("pruned_unstructured", path, model, notes, ft.steps_taken)


def reusable_export(checkpoint: str, export_summary: Mapping[str, Any] | None) -> Path | None:
    """The exported fp32 ONNX file of ``export_summary`` if it was exported from ``checkpoint``.

    Reused only when the summary names an existing ``onnx_path`` and its ``checkpoint_sha256``
    equals the SHA-256 of ``checkpoint`` now; otherwise (retrained without re-export, old summary
    without the hash, file gone) returns ``None`` and logs why, and the caller exports again.
    """
    if not export_summary:
        return None
    onnx_path = export_summary.get("onnx_path")
    if not onnx_path or not Path(onnx_path).is_file():
        logger.info(
            "export summary's onnx_path %r is missing; exporting fp32 ONNX again", onnx_path
        )
        return None
    recorded = export_summary.get("checkpoint_sha256")
    if recorded is None:
        logger.warning(
            "export summary has no checkpoint_sha256 (written by an older export); cannot tell "
            "whether %s comes from %s, exporting fp32 ONNX again",
            onnx_path,
            checkpoint,
        )
        return None
    current = file_sha256(checkpoint)
    if recorded != current:
        logger.warning(
            "checkpoint %s changed since %s was exported (sha256 %s... != recorded %s...), "
            "probably retrained without re-export; exporting fp32 ONNX again",
            checkpoint,
            onnx_path,
            current[:12],
            str(recorded)[:12],
        )
        return None
    onnx_recorded = export_summary.get("onnx_sha256")
    if onnx_recorded and file_sha256(onnx_path) != onnx_recorded:
        logger.warning(
            "%s has sha256 %s but the export summary recorded %s (file replaced after export); "
            "exporting fp32 ONNX again",
            onnx_path,
            file_sha256(onnx_path),
            onnx_recorded,
        )
        return None
    return Path(onnx_path)


def compress_checkpoint(
    checkpoint: str,
    mi: ModelInput,
    config: CompressionConfig,
    export_summary: Mapping[str, Any] | None = None,
) -> ComparisonTable:
    """Build every configured variant, evaluate it on the test split, and gate it.

    Args:
        checkpoint: training checkpoint (``mdl_training_summary.best_checkpoint``).
        mi: the model input (train split: calibration and fine-tuning; test split: evaluation).
        config: variants, gates, fine-tune and latency settings.
        export_summary: ``mdl_export_summary``; its parity-checked ``onnx_path`` is reused when
            its ``checkpoint_sha256`` matches ``checkpoint`` (see :func:`reusable_export`),
            else the fp32 ONNX is exported again into ``config.output_dir``.

    Returns:
        The gated :class:`ComparisonTable`; ONNX files are in ``config.output_dir``.
    """
    model, spec = load_model_for(checkpoint, mi)
    ctx = _Context(model, spec, mi, config)
    wanted = set(config.variants)
    results = [_fp32_torch(ctx)]
    needs_fp32 = wanted & {"fp32_onnx", "ptq_int8_static", "int8_dynamic"}
    fp32_path: Path | None = None
    if needs_fp32:
        fp32_path = reusable_export(checkpoint, export_summary) or ctx.export(model, "fp32_onnx")
    if wanted & {"qat_4bit", "pruned_unstructured"} and config.weight_swap:
        if fp32_path is None:
            fp32_path = reusable_export(checkpoint, export_summary) or ctx.export(
                model, "fp32_onnx"
            )
        try:
            ctx.template = WeightSwapTemplate(fp32_path, model)
        except ExportError as exc:
            logger.warning("no weight-swap template (%s); variants are exported one by one", exc)
    if "fp32_onnx" in wanted and fp32_path is not None:
        parity = _checked(ctx, fp32_path, model, config.parity.atol, "fp32_onnx")
        results.append(
            ctx.onnx_result("fp32_onnx", fp32_path, model, f"dynamo export, fp32; {parity}")
        )
    if "ptq_int8_static" in wanted and fp32_path is not None:
        calib = sample_calibration(
            ctx.X_train, config.calibration.n_samples, config.calibration.seed
        )
        path = quantize_static_int8(
            fp32_path,
            ctx.out_dir / "ptq_int8_static.onnx",
            calib,
            batch_size=config.calibration.batch_size,
        )
        results.append(
            ctx.onnx_result(
                "ptq_int8_static",
                path,
                model,
                f"QDQ, int8 weights symmetric per channel (Conv/MatMul/Gemm), int8 activations, MinMax calibration "
                f"on {len(calib)} training series; an ONNX LSTM op stays fp32 in static mode",
            )
        )
    if "int8_dynamic" in wanted and fp32_path is not None:
        path = quantize_dynamic_int8(fp32_path, ctx.out_dir / "int8_dynamic.onnx")
        results.append(
            ctx.onnx_result(
                "int8_dynamic",
                path,
                model,
                "int8 weights, activations quantized per call (LSTM -> DynamicQuantizeLSTM)",
            )
        )
    steps = {
        "qat_4bit": _qat_4bit,
        "pruned_structured": _pruned_structured,
        "pruned_unstructured": _pruned_unstructured,
    }
    for name, step in steps.items():
        if name in wanted:
            logger.info("building variant %s", name)
            results.append(step(ctx))
    table = build_comparison(results, config.gates, ctx.y_eval)
    failed = [r.name for r in table.rows if r.gate_passed is False]
    if failed:
        logger.warning("variants that failed their gate (never registrable): %s", failed)
    return table


def _latency_columns(stats: Any, batch: int) -> dict[str, float]:
    """The comparison-table columns of one latency measurement at ``batch``."""
    return {
        f"p50_ms_b{batch}": stats.p50_ms,
        f"p99_ms_b{batch}": stats.p99_ms,
        f"throughput_b{batch}": stats.throughput,
    }
