"""Strict configuration of the online service (``conf/base/parameters_serving.yml``, key ``serving``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sensorops.config_validation import ConfigError, load_section


class ServingConfigError(ConfigError):
    """A serving parameter has an unknown key or an invalid value (names the key)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchingConfig(_Strict):
    max_batch_size: int = Field(32, ge=1, le=1024, description="series per ONNX Runtime call")
    max_wait_ms: float = Field(
        5.0, ge=0.0, le=50.0, description="most a request waits for its batch (article: <= 50 ms)"
    )


class AdmissionConfig(_Strict):
    deadline_ms: float = Field(1000.0, gt=0.0, description="default per-request deadline")
    max_queued: int = Field(256, ge=1, description="hard cap on waiting requests per replica")
    retry_after_s: int = Field(1, ge=0, description="Retry-After header of a shed request")


class RuntimeConfig(_Strict):
    providers: tuple[str, ...] = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    intra_op_threads: int = Field(1, ge=1)
    numba_threads: int = Field(1, ge=1, description="threads of the DTW kernel in a replica")
    max_request_series: int = Field(64, ge=1, description="series in one synchronous request")
    max_nan_run: int | None = Field(
        32, ge=0, description="longest repairable run of consecutive NaNs in one channel"
    )


class ReloadConfig(_Strict):
    poll_s: float = Field(2.0, gt=0.0, description="how often a replica resolves the alias")


class PredictionLogConfig(_Strict):
    dir: str = "data/07_model_output/prediction_log"
    flush_records: int = Field(256, ge=1, description="roll a file after this many records")
    flush_s: float = Field(5.0, gt=0.0, description="... or after this many seconds")
    raw_input: bool = Field(
        True,
        description="log each series as received (column input_values) for monitoring's live "
        "data quality and for retraining on served traffic",
    )


class JobsConfig(_Strict):
    dir: str = "data/07_model_output/jobs"
    batch_size: int = Field(64, ge=1, description="series per map_batches call")


class RolloutRoutingConfig(_Strict):
    """Two arms in one service (:mod:`sensorops.rollout`): how a replica routes and logs them."""

    enabled: bool = Field(True, description="follow @canary and the rollout tag of the model")
    canary_alias: str = Field("canary", min_length=1, description="alias of the canary arm")
    seed: int = Field(0, description="seed of the generator that routes requests without a key")
    log_dir: str = Field(
        "data/07_model_output/arm_log", description="per-request arm log the controller reads"
    )
    shadow_max_inflight: int = Field(
        8, ge=1, description="shadow copies computing at once; more are dropped (and counted)"
    )


class InfraCheckConfig(_Strict):
    """The promotion pipeline's infrastructure check (:mod:`sensorops.serving.infra_check`)."""

    enabled: bool = True
    n_requests: int = Field(50, ge=1, description="canned requests sent to the sandbox")
    n_series: int = Field(8, ge=1, description="test-split series used as canned requests")
    latency_budget_ms: float = Field(1000.0, gt=0.0, description="p99 budget of one request")
    parity_atol: float = Field(1e-5, gt=0.0, description="max |probability difference|")
    startup_timeout_s: float = Field(300.0, gt=0.0, description="sandbox must be ready by then")


class ServingConfig(_Strict):
    """Everything ``sensorops serve`` needs; every field has the reference default."""

    model: str = "sensorops-classifier"
    alias: str = "production"
    fallback_alias: str | None = "staging"
    version: str | None = Field(
        None, description="pin this version (no alias, no hot reload): the infra check's sandbox"
    )
    tracking_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    ingress: Literal["direct", "proxy"] = "direct"
    namespace: str = "sensorops-serving"
    app_name: str = "sensorops"
    num_replicas: int = Field(1, ge=1)
    ray_address: str | None = None
    ray_temp_dir: str | None = Field(
        None, description="session folder root of a local Ray (default Ray's own, /tmp/ray)"
    )
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    reload: ReloadConfig = Field(default_factory=ReloadConfig)
    prediction_log: PredictionLogConfig = Field(default_factory=PredictionLogConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    infra_check: InfraCheckConfig = Field(default_factory=InfraCheckConfig)
    rollout: RolloutRoutingConfig = Field(default_factory=RolloutRoutingConfig)
    debug_delay_header: bool = Field(
        False, description="test-only: honour X-Debug-Delay-Ms (sleep per batch, a slow model)"
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, prefix: str = "serving") -> ServingConfig:
        """Validate ``data``; errors name the dotted key, e.g. ``serving.batching.max_wait_ms``."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in (prefix, *first["loc"]))
            if first["type"] == "extra_forbidden":
                raise ServingConfigError(f"{loc} is not a known serving parameter") from exc
            raise ServingConfigError(f"{loc}: {first['msg']}; got {first.get('input')!r}") from exc

    def resolve_paths(self, root: str | Path) -> ServingConfig:
        """Relative log/job/arm-log directories made absolute under the project ``root``."""
        root = Path(root)
        log = Path(self.prediction_log.dir)
        jobs = Path(self.jobs.dir)
        arm = Path(self.rollout.log_dir)
        return self.model_copy(
            update={
                "prediction_log": self.prediction_log.model_copy(
                    update={"dir": str(log if log.is_absolute() else root / log)}
                ),
                "jobs": self.jobs.model_copy(
                    update={"dir": str(jobs if jobs.is_absolute() else root / jobs)}
                ),
                "rollout": self.rollout.model_copy(
                    update={"log_dir": str(arm if arm.is_absolute() else root / arm)}
                ),
            }
        )


def load_serving_config(
    conf_dir: str | Path, env: str | None = None, overrides: dict[str, Any] | None = None
) -> ServingConfig:
    """Read ``conf/base/parameters_serving.yml``, then ``conf/<env>/`` on top, then ``overrides``.

    Raises:
        ServingConfigError: a file lacks the ``serving`` key or a value is invalid.
    """
    merged = load_section(conf_dir, "serving", env, overrides, error=ServingConfigError)
    return ServingConfig.from_dict(merged)
