"""MLflow logging from inside the workers: one training run shared by all ranks.

- Rank 0 logs params, per-step metrics, per-epoch validation metrics and the best checkpoint as
  an artifact. The training loop only queues metrics; a background thread coalesces whatever is
  queued for up to ``SEND_INTERVAL_S`` seconds and sends it in as few ``log_batch`` calls as
  MLflow allows (every metric of every step arrives; each HTTP call costs the client and the
  tracking server CPU, which on a small machine is the training workers' CPU).
- Every rank samples its own system metrics (CPU, memory; GPU memory/utilisation of its own device)
  in a background thread and logs them as ``system.rank<r>.<name>``, with run tags
  ``system.rank<r>.host`` / ``system.rank<r>.device`` naming where that rank ran.
- The run id normally comes from the launcher (a child of the Kedro run). Launched by hand,
  rank 0 creates the run (nested under ``parent_run_id`` if given) and broadcasts its id.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import torch

from sensorops.training.config import MlflowConfig
from sensorops.training.distributed import DistContext, broadcast_object

logger = logging.getLogger(__name__)

_MAX_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch
SEND_INTERVAL_S = 2.0
"""The sender thread waits up to this long for more metrics before one ``log_batch`` call."""


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)[:6000]
    return out


def _read_meminfo() -> dict[str, float]:
    values: dict[str, float] = {}
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                key, rest = line.split(":", 1)
                values[key] = float(rest.split()[0]) * 1024.0
    except OSError:
        pass
    return values


def _rss_bytes() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return float(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return float("nan")


class SystemSampler:
    """CPU and memory of this process (plus its CUDA device), sampled between calls."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._last_cpu = sum(os.times()[:2])
        self._last_wall = time.monotonic()

    def sample(self) -> dict[str, float]:
        """``{"cpu_percent", "rss_mb", "sys_memory_percent"[, "gpu_*"]}`` since the last call."""
        cpu, wall = sum(os.times()[:2]), time.monotonic()
        out = {
            "cpu_percent": 100.0 * (cpu - self._last_cpu) / max(wall - self._last_wall, 1e-6),
            "rss_mb": _rss_bytes() / 1e6,
        }
        self._last_cpu, self._last_wall = cpu, wall
        mem = _read_meminfo()
        if mem.get("MemTotal"):
            out["sys_memory_percent"] = 100.0 * (1 - mem.get("MemAvailable", 0.0) / mem["MemTotal"])
        if self.device.type == "cuda":
            out["gpu_memory_allocated_mb"] = torch.cuda.memory_allocated(self.device) / 1e6
            out["gpu_memory_reserved_mb"] = torch.cuda.memory_reserved(self.device) / 1e6
            try:
                out["gpu_utilization_percent"] = float(torch.cuda.utilization(self.device))
            except Exception:  # pynvml missing or no NVML: memory figures still logged
                pass
        return out


class RunLogger:
    """Logs one training run from every rank; a no-op when MLflow is disabled."""

    def __init__(
        self, cfg: MlflowConfig, ctx: DistContext, send_interval_s: float = SEND_INTERVAL_S
    ) -> None:
        self.cfg = cfg
        self.send_interval_s = send_interval_s
        self.batches_sent = 0
        self.ctx = ctx
        self.run_id: str | None = None
        self.created_run = False
        self._client: Any = None
        self._queue: queue.Queue[list[Any] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._sampler_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.outage: str | None = None
        """Set at the first call that could not reach the server: later calls are skipped (no
        retries again), training goes on to its end and checkpoints, and the launcher fails the
        run with this message once the workers are done."""

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, params: Mapping[str, Any] | None = None) -> str | None:
        """Resolve the run (create it on rank 0 if needed), log params, start background threads."""
        if not self.cfg.enabled:
            return None
        from mlflow.tracking import MlflowClient  # heavy import, only when tracking

        self._client = MlflowClient(tracking_uri=self.cfg.tracking_uri)
        run_id = self.cfg.run_id
        if run_id is None:
            run_id = self._create_run() if self.ctx.is_main else None
            run_id = broadcast_object(run_id, self.ctx)
            self.created_run = self.ctx.is_main
        self.run_id = run_id
        prefix = f"system.rank{self.ctx.rank}"
        self._call("set_tag", run_id, f"{prefix}.host", self.ctx.host)
        self._call("set_tag", run_id, f"{prefix}.device", str(self.ctx.device))
        if self.ctx.is_main and params:
            self._log_params(params)
        self._sender = threading.Thread(target=self._send_loop, name="mlflow-sender", daemon=True)
        self._sender.start()
        self._sampler_thread = threading.Thread(
            target=self._sample_loop, name="mlflow-sysmetrics", daemon=True
        )
        self._sampler_thread.start()
        return run_id

    def _create_run(self) -> str:
        from mlflow.entities import RunTag

        tags = [RunTag("sensorops.component", "training")]
        if self.cfg.parent_run_id:
            parent = self._client.get_run(self.cfg.parent_run_id)
            experiment_id = parent.info.experiment_id
            tags.append(RunTag("mlflow.parentRunId", self.cfg.parent_run_id))
        else:
            name = self.cfg.experiment_name or "sensorops"
            exp = self._client.get_experiment_by_name(name)
            experiment_id = exp.experiment_id if exp else self._client.create_experiment(name)
        run = self._client.create_run(
            experiment_id, run_name=self.cfg.run_name, tags={t.key: t.value for t in tags}
        )
        logger.info("created MLflow run %s", run.info.run_id)
        return run.info.run_id

    def _log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        run = self._call("get_run", self.run_id)
        if run is None:  # the server is gone (self.outage says so)
            return
        existing = run.data.params
        items = [Param(k, v) for k, v in flatten(params).items() if k not in existing]
        for i in range(0, len(items), 90):
            self._call("log_batch", self.run_id, params=items[i : i + 90])

    def close(self, status: str | None = None) -> None:
        """Flush everything, stop the threads; terminate the run if this rank created it."""
        if self._client is None:
            return
        self._stop.set()
        if self._sampler_thread is not None:
            self._sampler_thread.join(timeout=10)
        self._queue.put(None)
        if self._sender is not None:
            self._sender.join(timeout=60)
        if self.created_run and status is not None:
            self._call("set_terminated", self.run_id, status)
        self._client = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(...)``; an unreachable server is remembered, never raised.

        Tracking must never kill or restart the workers: the first failure that says the server
        is gone sets :attr:`outage`, and every later call returns at once (``None``).
        """
        from sensorops.tracking import looks_unreachable

        if self.outage is not None:
            return None
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except Exception as exc:
            if not looks_unreachable(exc):
                raise
            self.outage = f"{method} failed: {type(exc).__name__}: {str(exc)[:300]}"
            logger.warning(
                "rank %d: MLflow at %s stopped answering (%s); training goes on without tracking",
                self.ctx.rank,
                self.cfg.tracking_uri,
                self.outage,
            )
            return None

    # -- metrics ---------------------------------------------------------------------------
    def log_steps(self, rows: list[tuple[int, Mapping[str, float]]]) -> None:
        """Queue a window of per-step metrics ``[(step, {name: value}), ...]`` (rank 0 only)."""
        if self._client is None or not self.ctx.is_main or not rows:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._queue.put(
            [Metric(k, float(v), now, step) for step, metrics in rows for k, v in metrics.items()]
        )

    def log_now(self, step: int, metrics: Mapping[str, float]) -> None:
        """Queue metrics of one step (e.g. per-epoch validation) for sending (rank 0 only)."""
        self.log_steps([(step, metrics)])

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        """Synchronously log a file (rank 0 only)."""
        if self._client is None or not self.ctx.is_main:
            return
        self._call("log_artifact", self.run_id, path, artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self._client is None or not self.ctx.is_main:
            return
        for key, value in tags.items():
            self._call("set_tag", self.run_id, key, str(value))

    # -- threads ---------------------------------------------------------------------------
    def _send_loop(self) -> None:
        closing = False
        while not closing:
            item = self._queue.get()
            buffer: list[Any] = []
            if item is None:
                closing = True
            else:
                buffer.extend(item)
            deadline = time.monotonic() + self.send_interval_s
            while not closing and len(buffer) < _MAX_BATCH:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                else:
                    buffer.extend(item)
            self._send(buffer)

    def _send(self, metrics: list[Any]) -> None:
        for i in range(0, len(metrics), _MAX_BATCH):
            if self.outage is not None:
                return  # the server is gone: these metrics stay in the checkpoints and summary
            try:
                self._call("log_batch", self.run_id, metrics=metrics[i : i + _MAX_BATCH])
            except Exception as exc:  # tracking must never kill training
                self.errors.append(str(exc))
                logger.warning("MLflow log_batch failed: %s", exc)
                continue
            if self.outage is None:
                self.batches_sent += 1

    def _sample_loop(self) -> None:
        from mlflow.entities import Metric

        sampler = SystemSampler(self.ctx.device)
        prefix = f"system.rank{self.ctx.rank}"
        step = 0
        while True:
            stopped = self._stop.wait(self.cfg.system_metrics_interval_s)
            now = int(time.time() * 1000)
            self._queue.put(
                [Metric(f"{prefix}.{k}", float(v), now, step) for k, v in sampler.sample().items()]
            )
            step += 1
            if stopped:
                return
