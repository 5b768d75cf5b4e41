"""Typed configuration for ONNX export and compression, built from the Kedro parameter dicts.

Every model is a strict pydantic model (``extra="forbid"``), so a misspelled YAML key fails with
a message naming it. :func:`parse_config` turns pydantic's errors into one sentence per key that
lists the valid options.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from sensorops.config_validation import StrictModel, parse
from sensorops.modeling.errors import ModelingConfigError

#: Opsets the dynamo exporter (torch 2.13) emits and ONNX Runtime 1.31+ runs.
SUPPORTED_OPSETS: tuple[int, ...] = (18, 19, 20, 21, 22, 23)
#: Opset used for 4-bit weights (``DequantizeLinear`` on ``UINT4`` needs opset >= 21).
INT4_MIN_OPSET = 21
#: Compression variants, in the order of the comparison table.
VARIANTS: tuple[str, ...] = (
    "fp32_torch",
    "fp32_onnx",
    "ptq_int8_static",
    "int8_dynamic",
    "qat_4bit",
    "pruned_structured",
    "pruned_unstructured",
)
#: Gate family of every variant (the key in :class:`GateConfig`).
VARIANT_GATE: dict[str, str] = {
    "fp32_torch": "reference",
    "fp32_onnx": "fp32_onnx",
    "ptq_int8_static": "ptq_int8",
    "int8_dynamic": "ptq_int8",
    "qat_4bit": "qat_4bit",
    "pruned_structured": "pruned",
    "pruned_unstructured": "pruned",
}

_Model = TypeVar("_Model", bound=BaseModel)


_Strict = StrictModel


class RuntimeConfig(_Strict):
    """Which ONNX Runtime execution providers to ask for, and with how many threads."""

    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    """Providers in priority order; intersected with ``onnxruntime.get_available_providers()``."""
    intra_op_threads: int = Field(default=0, ge=0)
    """Threads per operator; 0 lets ONNX Runtime decide."""

    @field_validator("providers")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                "must name at least one execution provider, e.g. ['CPUExecutionProvider']"
            )
        return value


class ParityConfig(_Strict):
    """How torch and ONNX Runtime outputs are compared."""

    atol: float = Field(default=1e-4, gt=0)
    """Largest allowed max-absolute difference of the logits."""
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 16])
    """Batch sizes to compare at (at least two)."""
    max_series: int = Field(default=64, ge=1)
    """How many test series to use at most."""

    @field_validator("batch_sizes")
    @classmethod
    def _two_or_more(cls, value: list[int]) -> list[int]:
        if len(set(value)) < 2 or min(value) < 1:
            raise ValueError(f"needs at least two distinct batch sizes >= 1; got {value}")
        return value


class ExportConfig(_Strict):
    """``params:export``: ONNX export of the best checkpoint plus the parity check."""

    opset: int = 20
    """ONNX opset to emit; one of :data:`SUPPORTED_OPSETS`."""
    dynamic_time: bool = True
    """Export a dynamic time axis as well as the dynamic batch axis."""
    output_dir: str = "data/06_models/onnx"
    """Folder the ``.onnx`` file is written to."""
    file_name: str = "model_fp32.onnx"
    parity: ParityConfig = Field(default_factory=ParityConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @field_validator("opset")
    @classmethod
    def _opset(cls, value: int) -> int:
        if value not in SUPPORTED_OPSETS:
            raise ValueError(f"must be one of {list(SUPPORTED_OPSETS)}; got {value}")
        return value

    @field_validator("file_name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if not value.endswith(".onnx") or "/" in value or "\\" in value:
            raise ValueError(f"must be a plain file name ending in '.onnx'; got {value!r}")
        return value


class DistillConfig(_Strict):
    """Knowledge distillation from the fp32 teacher during a fine-tune.

    Loss = ``alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE``.
    """

    alpha: float = Field(default=0.0, ge=0, le=1)
    """Weight of the KL term; 0 = plain cross-entropy (no teacher)."""
    temperature: float = Field(default=2.0, gt=0)
    """Softening temperature of both logit sets."""


class EarlyStoppingConfig(_Strict):
    """Evaluate on the validation split during a fine-tune; keep the best weights."""

    eval_every_steps: int = Field(default=0, ge=0)
    """Validation accuracy every N optimizer steps; 0 = off (keep the last weights)."""
    patience_evals: int = Field(default=0, ge=0)
    """Stop after this many evaluations without improvement; 0 = never stop early."""
    min_delta: float = Field(default=0.0, ge=0)
    """Improvement (accuracy, in [0, 1]) needed to count as better."""


class FinetuneConfig(_Strict):
    """A short single-process fine-tune (Adam) sized in optimizer steps.

    Total steps = ``max(steps, epochs * steps_per_epoch)``: ``steps`` is the budget, ``epochs``
    a floor that scales with the data (on 32 series with batch 32 one epoch is one step).
    """

    steps: int = Field(default=0, ge=0)
    """Optimizer steps to take at least."""
    epochs: int = Field(default=3, ge=0)
    """Floor in passes over the training split."""
    lr: float = Field(default=1e-3, gt=0)
    """Peak learning rate (after the warmup)."""
    batch_size: int = Field(default=32, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    """``cosine``: linear warmup then cosine decay to ``min_lr_ratio * lr``."""
    warmup_fraction: float = Field(default=0.0, ge=0, lt=1)
    """Share of the steps spent in the linear warmup."""
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    grad_clip_norm: float | None = Field(default=None, gt=0)
    """Global gradient-norm clip; null = none."""
    distill: DistillConfig = Field(default_factory=DistillConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    seed: int = 0


#: Defaults of the compression fine-tunes (the YAML repeats and comments them).
_COMPRESSION_FINETUNE: dict[str, Any] = {
    "steps": 150,
    "epochs": 3,
    "lr": 1e-3,
    "schedule": "cosine",
    "warmup_fraction": 0.1,
    "min_lr_ratio": 0.05,
    "grad_clip_norm": 1.0,
    "distill": {"alpha": 0.7, "temperature": 2.0},
    "early_stopping": {"eval_every_steps": 10, "patience_evals": 5},
}


def _compression_finetune(**overrides: Any) -> FinetuneConfig:
    return FinetuneConfig.model_validate({**_COMPRESSION_FINETUNE, **overrides})


class CalibrationConfig(_Strict):
    """Sample of the training split used to calibrate static quantization."""

    n_samples: int = Field(default=128, ge=1)
    batch_size: int = Field(default=16, ge=1)
    seed: int = 0


class QatConfig(_Strict):
    """4-bit quantization-aware training of the weights."""

    bits: Literal[4] = 4
    """Weight bits (4 only: what ONNX ``UINT4`` stores)."""
    finetune: FinetuneConfig = Field(default_factory=lambda: _compression_finetune(lr=5e-4))
    calibration_samples: int = Field(default=128, ge=1)
    """Training series on which each weight matrix's 4-bit range (clip ratio) is chosen."""
    clip_ratios: list[float] = Field(default_factory=lambda: [1.0, 0.95, 0.9, 0.85, 0.8])
    """Candidate shares of each row's [min, max] range kept before rounding to 4 bits."""
    opset: int = 21
    """Opset of the 4-bit model (>= 21 for ``UINT4`` ``DequantizeLinear``)."""

    @field_validator("opset")
    @classmethod
    def _opset(cls, value: int) -> int:
        if value not in SUPPORTED_OPSETS or value < INT4_MIN_OPSET:
            valid = [o for o in SUPPORTED_OPSETS if o >= INT4_MIN_OPSET]
            raise ValueError(
                f"must be one of {valid} (4-bit weights need opset >= 21); got {value}"
            )
        return value


class StructuredPruningConfig(_Strict):
    """Remove a share of units/channels by L2 norm, physically shrinking the layers."""

    amount: float = Field(default=0.2, gt=0, lt=1)
    """Share of units removed in the end."""
    iterations: int = Field(default=2, ge=1)
    """Prune in this many equal steps up to ``amount``, fine-tuning after each."""
    finetune: FinetuneConfig = Field(default_factory=_compression_finetune)
    """Fine-tune after every pruning step (the last one gets the full budget)."""


class UnstructuredPruningConfig(_Strict):
    """Global magnitude pruning of all weight matrices, ramped up during the fine-tune."""

    sparsity: float = Field(default=0.5, gt=0, lt=1)
    """Final share of zeros among the weight matrices."""
    ramp_fraction: float = Field(default=0.6, gt=0, le=1)
    """Zhu & Gupta cubic ramp ``s_t = s (1 - (1 - t / T)**3)`` over this share of the steps."""
    prune_every_steps: int = Field(default=5, ge=1)
    """Recompute the masks every N steps during the ramp."""
    finetune: FinetuneConfig = Field(default_factory=_compression_finetune)


class GateConfig(_Strict):
    """Accuracy gates versus fp32 torch on the same test series.

    A variant fails when its drop (percentage points) exceeds the limit of its family **and**
    the exact one-sided McNemar p-value of the loss is below ``alpha``
    (:func:`sensorops.modeling.comparison.gate_verdict`).
    """

    fp32_onnx: float = Field(default=0.0, ge=0)
    ptq_int8: float = Field(default=1.0, ge=0)
    qat_4bit: float = Field(default=3.0, ge=0)
    pruned: float = Field(default=1.0, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the McNemar loss test."""
    confidence: float = Field(default=0.95, gt=0, lt=1)
    """Level of the reported paired-bootstrap interval (reported, not gated on)."""
    bootstrap_resamples: int = Field(default=2000, ge=100)
    bootstrap_seed: int = 0


class LatencyConfig(_Strict):
    """ONNX Runtime CPU latency measurement (p50/p99 over timed runs after a warm-up)."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 64])
    n_warmup: int = Field(default=10, ge=0)
    n_iter: int = Field(default=100, ge=1)
    threads: int = Field(default=0, ge=0)
    """Intra-op threads for latency sessions (torch eager uses the same); 0 = library default."""

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or min(value) < 1:
            raise ValueError(f"needs at least one batch size >= 1; got {value}")
        return value


class CompressionParityConfig(_Strict):
    """Every variant's ONNX file against the torch model it was built from."""

    atol: float = Field(default=1e-4, gt=0)
    """Max |torch - ORT| logit difference for fp32-weight graphs (fp32, pruned)."""
    atol_4bit: float = Field(default=5e-2, gt=0)
    """Same for 4-bit QAT: ORT's MatMulNBits also quantizes activations on the fly."""
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 16])
    max_series: int = Field(default=64, ge=1)


class CompressionConfig(_Strict):
    """``params:compression``: which variants to build and how, the gates and the latency run."""

    variants: list[str] = Field(default_factory=lambda: list(VARIANTS))
    output_dir: str = "data/06_models/compressed"
    opset: int = 20
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    qat: QatConfig = Field(default_factory=QatConfig)
    structured: StructuredPruningConfig = Field(default_factory=StructuredPruningConfig)
    unstructured: UnstructuredPruningConfig = Field(default_factory=UnstructuredPruningConfig)
    gates: GateConfig = Field(default_factory=GateConfig)
    parity: CompressionParityConfig = Field(default_factory=CompressionParityConfig)
    weight_swap: bool = True
    """Write QAT/unstructured weights into a copy of the exported fp32 graph (no new export)."""
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in VARIANTS]
        if unknown:
            raise ValueError(f"must be a subset of {list(VARIANTS)}; got unknown {unknown}")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a variant twice: {value}")
        return value

    @field_validator("opset")
    @classmethod
    def _opset(cls, value: int) -> int:
        if value not in SUPPORTED_OPSETS:
            raise ValueError(f"must be one of {list(SUPPORTED_OPSETS)}; got {value}")
        return value

    @model_validator(mode="after")
    def _reference_first(self) -> CompressionConfig:
        if "fp32_torch" not in self.variants:
            raise ValueError(
                "variants must include 'fp32_torch' (the reference every gate compares to)"
            )
        return self


def parse_config(model: type[_Model], data: dict[str, Any] | None, section: str) -> _Model:
    """Validate ``data`` (a Kedro params dict) into ``model``; errors name ``section.key``.

    Raises:
        ModelingConfigError: (a :class:`ModelingError` and a
            :class:`~sensorops.config_validation.ConfigError`) one sentence per problem in the
            template of :func:`sensorops.config_validation.parse`, e.g.
            ``"export.parity.tol is not a known key; valid keys are ['atol', ...]; did you mean 'atol'?"``.
    """
    return parse(section, model, data, error=ModelingConfigError)
