"""Typed, strict training configuration built from plain dicts (Kedro params or a JSON file).

The Kedro parameters ``training.trainer`` map one-to-one onto :class:`TrainingConfig`. The
launcher adds the run-time fields (``model_input_path``, ``output_dir``, MLflow run ids) and
writes the whole thing as ``resolved_config.json``; ``python -m sensorops.training.train
--config resolved_config.json`` reads it back, by hand or under ``torchrun``.

Every section is a pydantic dataclass under the project's one config policy
(:data:`~sensorops.config_validation.STRICT_DATACLASS`): every unknown key is an error that lists
the valid keys, every bad value names its key, in the template of
:func:`sensorops.config_validation.parse`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from sensorops.architectures import ARCHITECTURES
from sensorops.config_validation import STRICT_DATACLASS, StrictBool, StrictFloat, StrictInt, parse
from sensorops.config_validation import ConfigError as _ConfigError
from sensorops.training.augment import AugmentConfig
from sensorops.training.curriculum import CurriculumConfig

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "tf32", "bf16", "fp16")
BACKENDS: tuple[str, ...] = ("auto", "gloo", "nccl")
RDZV_BACKENDS: tuple[str, ...] = ("c10d", "static", "etcd", "etcd-v2")
VAL_METRICS: tuple[str, ...] = ("val_accuracy", "val_macro_f1", "val_loss")
RESUME_MODES: tuple[str, ...] = ("auto", "never", "must")
PROGRESS_MODES: tuple[str, ...] = ("auto", "always", "never")
TIE_BREAKS: tuple[str, ...] = ("val_loss", "later", "none")
STRATEGIES: tuple[str, ...] = ("ddp", "zero1", "fsdp")
CURRICULUM_SCORES: tuple[str, ...] = ("dtw_to_class_reference",)


class TrainingConfigError(_ConfigError):
    """A training parameter is unknown or has an invalid value."""


ConfigError = TrainingConfigError
"""The name the launcher, the workers and the tests use."""

ArchitectureName = Literal[ARCHITECTURES]  # type: ignore[valid-type]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]
Backend = Literal[BACKENDS]  # type: ignore[valid-type]
RdzvBackend = Literal[RDZV_BACKENDS]  # type: ignore[valid-type]
ValMetric = Literal[VAL_METRICS]  # type: ignore[valid-type]
ResumeMode = Literal[RESUME_MODES]  # type: ignore[valid-type]
ProgressMode = Literal[PROGRESS_MODES]  # type: ignore[valid-type]
TieBreak = Literal[TIE_BREAKS]  # type: ignore[valid-type]
Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]
section = dataclass(config=STRICT_DATACLASS)


@section
class ModelConfig:
    """Architecture and size; channels/classes/length come from the model input."""

    name: ArchitectureName = "lstm_attention"
    """One of ``lstm_attention``, ``resnet1d``, ``transformer``."""
    hidden: StrictInt = Field(64, ge=1)
    """Hidden width (LSTM units, conv channels, transformer d_model)."""
    layers: StrictInt = Field(2, ge=1)
    """Depth (LSTM layers, residual blocks, encoder layers)."""
    dropout: StrictFloat = Field(0.1, ge=0.0, le=0.99)
    """Dropout probability in [0, 1)."""
    heads: StrictInt = Field(4, ge=1)
    """Transformer attention heads (must divide ``hidden``)."""


@section
class DataConfig:
    """Batching. ``batch_size`` is the GLOBAL batch per optimizer step (all ranks, all accumulation
    micro-steps); each rank's micro-batch is ``batch_size // (world_size * grad_accum_steps)``."""

    batch_size: StrictInt = Field(32, ge=1)
    """Global batch per optimizer step; must be >= world size x grad_accum_steps."""
    eval_batch_size: StrictInt = Field(256, ge=1)
    """Per-rank batch for validation."""


@section
class OptimizerConfig:
    """AdamW; weight decay applies to conv/linear (and LSTM/attention projection) weight matrices only."""

    lr: StrictFloat = Field(1e-3, gt=0.0)
    """Peak learning rate (after warmup)."""
    weight_decay: StrictFloat = Field(0.01, ge=0.0)
    """Decoupled weight decay for weight matrices; norms and biases get none."""
    beta1: StrictFloat = Field(0.9, ge=0.0, le=0.999999)
    beta2: StrictFloat = Field(0.999, ge=0.0, le=0.999999)
    eps: StrictFloat = Field(1e-8, gt=0.0)
    grad_clip_norm: StrictFloat | None = Field(1.0, gt=0.0)
    """Clip the global gradient norm to this value; null disables clipping."""
    grad_accum_steps: StrictInt = Field(1, ge=1)
    """Micro-batches accumulated per optimizer step."""


@section
class ScheduleConfig:
    """Linear warmup, then cosine annealing to ``lr * min_lr_ratio``, optionally with warm restarts."""

    warmup_steps: StrictInt = Field(20, ge=0)
    """Optimizer steps of linear warmup from 0 to the peak learning rate."""
    min_lr_ratio: StrictFloat = Field(0.05, ge=0.0, le=1.0)
    """Floor of the cosine, as a fraction of the peak learning rate."""
    restarts: StrictInt = Field(0, ge=0)
    """Number of warm restarts: the post-warmup steps are split into ``restarts + 1`` cosine cycles."""
    restart_mult: StrictFloat = Field(1.0, ge=1.0)
    """Each cycle is this many times longer than the previous one (SGDR's T_mult)."""


@section
class LoopConfig:
    """Length of training, early stopping and validation."""

    epochs: StrictInt = Field(30, ge=1)
    """Passes over the training split."""
    max_steps: StrictInt | None = Field(None, ge=1)
    """Stop after this many optimizer steps (null: epochs decide). Also sets the schedule length."""
    early_stopping_metric: ValMetric = "val_accuracy"
    """Validation metric that picks the best checkpoint and drives early stopping."""
    early_stopping_patience: StrictInt | None = Field(10, ge=1)
    """Epochs without improvement before stopping; null disables early stopping."""
    min_delta: StrictFloat = Field(0.0, ge=0.0)
    """Smallest change that counts as an improvement."""
    label_smoothing: StrictFloat = Field(0.0, ge=0.0, le=0.99)
    sync_batchnorm: StrictBool = False
    """Convert BatchNorm to SyncBatchNorm (CUDA only; ignored with a warning on CPU)."""
    min_steps: StrictInt | None = Field(None, ge=1)
    """Floor on optimizer steps: without ``max_steps``, training runs
    ``max(epochs x steps_per_epoch, min_steps)`` steps (more epochs on small data), and early
    stopping never stops before it. Null: no floor."""
    eval_every_n_steps: StrictInt | None = Field(None, ge=1)
    """Validate at the first epoch end at least this many steps after the last validation (on
    small data one epoch is one step); null: every epoch. Patience counts validations."""
    tie_break: TieBreak = "val_loss"
    """An epoch whose early-stopping metric TIES the best: ``val_loss`` (it becomes the best when
    its validation loss is lower), ``later`` (always prefer the later checkpoint) or ``none``."""


@section
class CheckpointConfig:
    """Checkpoint cadence and resume policy. Files: ``<output_dir>/checkpoints/{last,best}.pt``."""

    every_n_steps: StrictInt | None = Field(100, ge=1)
    """Also checkpoint every N optimizer steps (always at each epoch end); null: epoch ends only."""
    resume: ResumeMode = "auto"
    """``auto``: resume from last.pt when it exists and matches this config and data, else start
    fresh; ``never``: always start fresh; ``must``: fail unless a matching last.pt exists."""


@section
class LaunchConfig:
    """How workers are launched (same meaning as the torchrun flags of the same names)."""

    nproc_per_node: Annotated[StrictInt, Field(ge=1)] | Literal["auto"] = "auto"
    """``auto`` = number of visible GPUs, or ``cpu_workers`` processes without a GPU."""
    cpu_workers: StrictInt = Field(2, ge=1)
    """Workers per node for ``nproc_per_node: auto`` on a machine without GPUs."""
    nnodes: StrictInt = Field(1, ge=1)
    node_rank: StrictInt = Field(0, ge=0)
    rdzv_backend: RdzvBackend = "c10d"
    rdzv_endpoint: str | None = None
    """``host:port`` of the rendezvous; null = 127.0.0.1 on a free port (single node)."""
    max_restarts: StrictInt = Field(0, ge=0)
    """Restarts of the worker group after a worker failure (each resumes from last.pt)."""
    backend: Backend = "auto"
    """Process-group backend: ``auto`` = nccl on CUDA, gloo on CPU."""
    threads_per_worker: StrictInt | None = Field(None, ge=1)
    """torch intra-op threads per worker; null = CPU cores // local workers (at least 1)."""
    monitor_interval_s: StrictFloat = Field(0.5, gt=0.0)
    process_group_timeout_s: StrictFloat = Field(1800.0, gt=0.0)
    """Timeout of process-group setup and collectives: a hung worker group errors (and restarts)."""

    @model_validator(mode="after")
    def _topology(self) -> LaunchConfig:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank must be < nnodes={self.nnodes}; got {self.node_rank}")
        if self.rdzv_endpoint is None and self.nnodes > 1:
            raise ValueError("rdzv_endpoint (host:port) is required when nnodes > 1; got None")
        return self


@section
class MlflowConfig:
    """Tracking. The launcher fills ``tracking_uri``/``run_id``/``parent_run_id`` at run time."""

    enabled: StrictBool = True
    log_every_n_steps: StrictInt = Field(10, ge=1)
    """Rank 0 buffers per-step metrics and sends them in one batch every N steps (off the loop thread)."""
    system_metrics_interval_s: StrictFloat = Field(10.0, gt=0.0)
    """Every rank samples its CPU/memory (and GPU) this often."""
    log_checkpoint_artifact: StrictBool = True
    """Log best.pt as an artifact of the training run."""
    run_name: str = "training"
    experiment_name: str | None = None
    """Only used when no parent run and no run id are given (torchrun by hand)."""
    tracking_uri: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None


@section
class TrainingConfig:
    """Everything one training run needs. Built from the ``training.trainer`` parameters."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """CutMix / Mixup on training batches (never validation or test)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    """Easy-to-hard pacing of the training pool."""
    strategy: Strategy = "ddp"
    """Data-parallel strategy with more than one worker: ``ddp`` (replicated optimizer state),
    ``zero1`` (``ZeroRedundancyOptimizer``: optimizer state sharded across ranks) or ``fsdp``
    (FSDP2 ``fully_shard``: parameters, gradients and optimizer state sharded). Checkpoints are
    consolidated (full state dicts) under every strategy."""
    precision: Precision = "auto"
    """``fp32``, ``tf32``, ``bf16`` (autocast), ``fp16`` (autocast + dynamic loss scaling) or
    ``auto`` (bf16 on GPUs that support it, else fp32)."""
    seed: StrictInt = Field(42, ge=0)
    """Base seed. Every rank seeds with it to build identical initial weights; rank r then
    reseeds with ``seed + 1000 * r + 1`` for its own randomness (dropout), plus the optimizer
    step when resuming."""
    deterministic: StrictBool = False
    """Deterministic kernels (slower); with a fixed seed, runs repeat exactly."""
    progress_bar: ProgressMode = "auto"
    """Rank-0 progress bar: ``auto`` (only on a terminal), ``always`` or ``never``."""
    output_dir: str = "data/06_models/training"
    """Run directory: checkpoints/, resolved_config.json, training_summary.json."""
    model_input_path: str | None = None
    """The model input .npz the workers read (the launcher fills it)."""

    # -- conversion -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainingConfig:
        """Build from plain (nested) dicts; unknown keys raise :class:`ConfigError`."""
        return parse("training.trainer", cls, data, error=TrainingConfigError)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainingConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"training config {path} does not exist; `kedro run --pipelines=training` writes one "
                f"to <output_dir>/resolved_config.json"
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"training config {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **sections: Any) -> TrainingConfig:
        """A copy with some top-level fields or nested fields (``mlflow={"run_id": ...}``) changed."""
        data = self.to_dict()
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        return TrainingConfig.from_dict(data)

    def fingerprint_dict(self) -> dict[str, Any]:
        """The parts that define WHAT is trained (not how it is launched or tracked).

        A checkpoint is resumed only if its fingerprint equals the current one.
        """
        data = self.to_dict()
        for key in ("launch", "mlflow", "progress_bar", "output_dir", "model_input_path"):
            data.pop(key)
        data["checkpoint"].pop("resume")
        return data
