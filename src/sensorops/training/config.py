"""Typed, strict training configuration built from plain dicts (Kedro params or a JSON file).

The Kedro parameters ``training.trainer`` map one-to-one onto :class:`TrainingConfig`. The
launcher adds the run-time fields (``model_input_path``, ``output_dir``, MLflow run ids) and
writes the whole thing as ``resolved_config.json``; ``python -m sensorops.training.train
--config resolved_config.json`` reads it back, by hand or under ``torchrun``.

Every unknown key is an error that lists the valid keys; every bad value names its key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sensorops.architectures import ARCHITECTURES
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


class ConfigError(ValueError):
    """A training parameter is unknown or has an invalid value."""


def _choice(key: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{key} must be one of {list(options)}; got {value!r}")


def _number(
    key: str,
    value: Any,
    *,
    minimum: float | None = None,
    integer: bool = False,
    exclusive: bool = False,
    maximum: float | None = None,
) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{key} must be {'an integer' if integer else 'a number'}; got {value!r}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        raise ConfigError(f"{key} must be {'>' if exclusive else '>='} {minimum}; got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be <= {maximum}; got {value!r}")


@dataclass
class ModelConfig:
    """Architecture and size; channels/classes/length come from the model input."""

    name: str = "lstm_attention"
    """One of ``lstm_attention``, ``resnet1d``, ``transformer``."""
    hidden: int = 64
    """Hidden width (LSTM units, conv channels, transformer d_model)."""
    layers: int = 2
    """Depth (LSTM layers, residual blocks, encoder layers)."""
    dropout: float = 0.1
    """Dropout probability in [0, 1)."""
    heads: int = 4
    """Transformer attention heads (must divide ``hidden``)."""

    def validate(self, prefix: str) -> None:
        _choice(f"{prefix}.name", self.name, ARCHITECTURES)
        for key in ("hidden", "layers", "heads"):
            _number(f"{prefix}.{key}", getattr(self, key), minimum=1, integer=True)
        _number(f"{prefix}.dropout", self.dropout, minimum=0.0, maximum=0.99)


@dataclass
class DataConfig:
    """Batching. ``batch_size`` is the GLOBAL batch per optimizer step (all ranks, all accumulation
    micro-steps); each rank's micro-batch is ``batch_size // (world_size * grad_accum_steps)``."""

    batch_size: int = 32
    """Global batch per optimizer step; must be >= world size x grad_accum_steps."""
    eval_batch_size: int = 256
    """Per-rank batch for validation."""

    def validate(self, prefix: str) -> None:
        _number(f"{prefix}.batch_size", self.batch_size, minimum=1, integer=True)
        _number(f"{prefix}.eval_batch_size", self.eval_batch_size, minimum=1, integer=True)


@dataclass
class OptimizerConfig:
    """AdamW; weight decay applies to conv/linear (and LSTM/attention projection) weight matrices only."""

    lr: float = 1e-3
    """Peak learning rate (after warmup)."""
    weight_decay: float = 0.01
    """Decoupled weight decay for weight matrices; norms and biases get none."""
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip_norm: float | None = 1.0
    """Clip the global gradient norm to this value; null disables clipping."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step."""

    def validate(self, prefix: str) -> None:
        _number(f"{prefix}.lr", self.lr, minimum=0.0, exclusive=True)
        _number(f"{prefix}.weight_decay", self.weight_decay, minimum=0.0)
        _number(f"{prefix}.beta1", self.beta1, minimum=0.0, maximum=0.999999)
        _number(f"{prefix}.beta2", self.beta2, minimum=0.0, maximum=0.999999)
        _number(f"{prefix}.eps", self.eps, minimum=0.0, exclusive=True)
        if self.grad_clip_norm is not None:
            _number(f"{prefix}.grad_clip_norm", self.grad_clip_norm, minimum=0.0, exclusive=True)
        _number(f"{prefix}.grad_accum_steps", self.grad_accum_steps, minimum=1, integer=True)


@dataclass
class ScheduleConfig:
    """Linear warmup, then cosine annealing to ``lr * min_lr_ratio``, optionally with warm restarts."""

    warmup_steps: int = 20
    """Optimizer steps of linear warmup from 0 to the peak learning rate."""
    min_lr_ratio: float = 0.05
    """Floor of the cosine, as a fraction of the peak learning rate."""
    restarts: int = 0
    """Number of warm restarts: the post-warmup steps are split into ``restarts + 1`` cosine cycles."""
    restart_mult: float = 1.0
    """Each cycle is this many times longer than the previous one (SGDR's T_mult)."""

    def validate(self, prefix: str) -> None:
        _number(f"{prefix}.warmup_steps", self.warmup_steps, minimum=0, integer=True)
        _number(f"{prefix}.min_lr_ratio", self.min_lr_ratio, minimum=0.0, maximum=1.0)
        _number(f"{prefix}.restarts", self.restarts, minimum=0, integer=True)
        _number(f"{prefix}.restart_mult", self.restart_mult, minimum=1.0)


@dataclass
class LoopConfig:
    """Length of training, early stopping and validation."""

    epochs: int = 30
    """Passes over the training split."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (null: epochs decide). Also sets the schedule length."""
    early_stopping_metric: str = "val_accuracy"
    """Validation metric that picks the best checkpoint and drives early stopping."""
    early_stopping_patience: int | None = 10
    """Epochs without improvement before stopping; null disables early stopping."""
    min_delta: float = 0.0
    """Smallest change that counts as an improvement."""
    label_smoothing: float = 0.0
    sync_batchnorm: bool = False
    """Convert BatchNorm to SyncBatchNorm (CUDA only; ignored with a warning on CPU)."""
    min_steps: int | None = None
    """Floor on optimizer steps: without ``max_steps``, training runs
    ``max(epochs x steps_per_epoch, min_steps)`` steps (more epochs on small data), and early
    stopping never stops before it. Null: no floor."""
    eval_every_n_steps: int | None = None
    """Validate at the first epoch end at least this many steps after the last validation (on
    small data one epoch is one step); null: every epoch. Patience counts validations."""
    tie_break: str = "val_loss"
    """An epoch whose early-stopping metric TIES the best: ``val_loss`` (it becomes the best when
    its validation loss is lower), ``later`` (always prefer the later checkpoint) or ``none``."""

    def validate(self, prefix: str) -> None:
        _number(f"{prefix}.epochs", self.epochs, minimum=1, integer=True)
        if self.min_steps is not None:
            _number(f"{prefix}.min_steps", self.min_steps, minimum=1, integer=True)
        _choice(f"{prefix}.tie_break", self.tie_break, TIE_BREAKS)
        if self.eval_every_n_steps is not None:
            _number(
                f"{prefix}.eval_every_n_steps", self.eval_every_n_steps, minimum=1, integer=True
            )
        if self.max_steps is not None:
            _number(f"{prefix}.max_steps", self.max_steps, minimum=1, integer=True)
        _choice(f"{prefix}.early_stopping_metric", self.early_stopping_metric, VAL_METRICS)
        if self.early_stopping_patience is not None:
            _number(
                f"{prefix}.early_stopping_patience",
                self.early_stopping_patience,
                minimum=1,
                integer=True,
            )
        _number(f"{prefix}.min_delta", self.min_delta, minimum=0.0)
        _number(f"{prefix}.label_smoothing", self.label_smoothing, minimum=0.0, maximum=0.99)
        if not isinstance(self.sync_batchnorm, bool):
            raise ConfigError(
                f"{prefix}.sync_batchnorm must be true or false; got {self.sync_batchnorm!r}"
            )


@dataclass
class CheckpointConfig:
    """Checkpoint cadence and resume policy. Files: ``<output_dir>/checkpoints/{last,best}.pt``."""

    every_n_steps: int | None = 100
    """Also checkpoint every N optimizer steps (always at each epoch end); null: epoch ends only."""
    resume: str = "auto"
    """``auto``: resume from last.pt when it exists and matches this config and data, else start
    fresh; ``never``: always start fresh; ``must``: fail unless a matching last.pt exists."""

    def validate(self, prefix: str) -> None:
        if self.every_n_steps is not None:
            _number(f"{prefix}.every_n_steps", self.every_n_steps, minimum=1, integer=True)
        _choice(f"{prefix}.resume", self.resume, RESUME_MODES)


@dataclass
class LaunchConfig:
    """How workers are launched (same meaning as the torchrun flags of the same names)."""

    nproc_per_node: int | str = "auto"
    """``auto`` = number of visible GPUs, or ``cpu_workers`` processes without a GPU."""
    cpu_workers: int = 2
    """Workers per node for ``nproc_per_node: auto`` on a machine without GPUs."""
    nnodes: int = 1
    node_rank: int = 0
    rdzv_backend: str = "c10d"
    rdzv_endpoint: str | None = None
    """``host:port`` of the rendezvous; null = 127.0.0.1 on a free port (single node)."""
    max_restarts: int = 0
    """Restarts of the worker group after a worker failure (each resumes from last.pt)."""
    backend: str = "auto"
    """Process-group backend: ``auto`` = nccl on CUDA, gloo on CPU."""
    threads_per_worker: int | None = None
    """torch intra-op threads per worker; null = CPU cores // local workers (at least 1)."""
    monitor_interval_s: float = 0.5
    process_group_timeout_s: float = 1800.0
    """Timeout of process-group setup and collectives: a hung worker group errors (and restarts)."""

    def validate(self, prefix: str) -> None:
        if self.nproc_per_node != "auto":
            _number(f"{prefix}.nproc_per_node", self.nproc_per_node, minimum=1, integer=True)
        _number(f"{prefix}.cpu_workers", self.cpu_workers, minimum=1, integer=True)
        _number(f"{prefix}.nnodes", self.nnodes, minimum=1, integer=True)
        _number(f"{prefix}.node_rank", self.node_rank, minimum=0, integer=True)
        if self.node_rank >= self.nnodes:
            raise ConfigError(
                f"{prefix}.node_rank must be < {prefix}.nnodes={self.nnodes}; got {self.node_rank}"
            )
        _choice(f"{prefix}.rdzv_backend", self.rdzv_backend, RDZV_BACKENDS)
        if self.rdzv_endpoint is None and self.nnodes > 1:
            raise ConfigError(f"{prefix}.rdzv_endpoint (host:port) is required when nnodes > 1")
        _number(f"{prefix}.max_restarts", self.max_restarts, minimum=0, integer=True)
        _choice(f"{prefix}.backend", self.backend, BACKENDS)
        if self.threads_per_worker is not None:
            _number(
                f"{prefix}.threads_per_worker", self.threads_per_worker, minimum=1, integer=True
            )
        _number(
            f"{prefix}.monitor_interval_s", self.monitor_interval_s, minimum=0.0, exclusive=True
        )
        _number(
            f"{prefix}.process_group_timeout_s",
            self.process_group_timeout_s,
            minimum=0.0,
            exclusive=True,
        )


@dataclass
class MlflowConfig:
    """Tracking. The launcher fills ``tracking_uri``/``run_id``/``parent_run_id`` at run time."""

    enabled: bool = True
    log_every_n_steps: int = 10
    """Rank 0 buffers per-step metrics and sends them in one batch every N steps (off the loop thread)."""
    system_metrics_interval_s: float = 10.0
    """Every rank samples its CPU/memory (and GPU) this often."""
    log_checkpoint_artifact: bool = True
    """Log best.pt as an artifact of the training run."""
    run_name: str = "training"
    experiment_name: str | None = None
    """Only used when no parent run and no run id are given (torchrun by hand)."""
    tracking_uri: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None

    def validate(self, prefix: str) -> None:
        for key in ("enabled", "log_checkpoint_artifact"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(
                    f"{prefix}.{key} must be true or false; got {getattr(self, key)!r}"
                )
        _number(f"{prefix}.log_every_n_steps", self.log_every_n_steps, minimum=1, integer=True)
        _number(
            f"{prefix}.system_metrics_interval_s",
            self.system_metrics_interval_s,
            minimum=0.0,
            exclusive=True,
        )


@dataclass
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
    strategy: str = "ddp"
    """Data-parallel strategy with more than one worker: ``ddp`` (replicated optimizer state),
    ``zero1`` (``ZeroRedundancyOptimizer``: optimizer state sharded across ranks) or ``fsdp``
    (FSDP2 ``fully_shard``: parameters, gradients and optimizer state sharded). Checkpoints are
    consolidated (full state dicts) under every strategy."""
    precision: str = "auto"
    """``fp32``, ``tf32``, ``bf16`` (autocast), ``fp16`` (autocast + dynamic loss scaling) or
    ``auto`` (bf16 on GPUs that support it, else fp32)."""
    seed: int = 42
    """Base seed; rank r uses ``seed + r`` for its own randomness (dropout)."""
    deterministic: bool = False
    """Deterministic kernels (slower); with a fixed seed, runs repeat exactly."""
    progress_bar: str = "auto"
    """Rank-0 progress bar: ``auto`` (only on a terminal), ``always`` or ``never``."""
    output_dir: str = "data/06_models/training"
    """Run directory: checkpoints/, resolved_config.json, training_summary.json."""
    model_input_path: str | None = None
    """The model input .npz the workers read (the launcher fills it)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.validate(f"training.trainer.{f.name}")
        _choice("training.trainer.precision", self.precision, PRECISIONS)
        _choice("training.trainer.strategy", self.strategy, STRATEGIES)
        _number("training.trainer.seed", self.seed, minimum=0, integer=True)
        if not isinstance(self.deterministic, bool):
            raise ConfigError(
                f"training.trainer.deterministic must be true or false; got {self.deterministic!r}"
            )
        _choice("training.trainer.progress_bar", self.progress_bar, PROGRESS_MODES)

    # -- conversion -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainingConfig:
        """Build from plain (nested) dicts; unknown keys raise :class:`ConfigError`."""
        return _build(cls, dict(data or {}), "training.trainer")

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


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix} must be a mapping; got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{prefix} has unknown key(s) {unknown}; valid keys are {valid}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}.{name}")
        else:
            kwargs[name] = _coerce(hint, value)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any) -> Any:
    """YAML/JSON gives ints for floats like ``1``; accept them for float fields."""
    args = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint)
        else ()
    )
    floaty = hint is float or float in args
    if floaty and isinstance(value, int) and not isinstance(value, bool) and int not in args:
        return float(value)
    return value
