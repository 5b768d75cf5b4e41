"""Launch the training workers from one Python process (what the Kedro node calls).

:func:`launch_training` checks everything it can before any worker starts, writes the resolved
config and the model input into the run directory, creates the MLflow training run as a nested
child of the active run (the Kedro run opened by kedro-mlflow), launches
:func:`sensorops.training.train.run_worker` exactly as ``torchrun`` would
(``torch.distributed.launcher.api.elastic_launch``, spawn), waits, and returns rank 0's summary.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sensorops.model_input import ModelInput, ModelInputError, load_model_input, save_model_input
from sensorops.tracking import TrackingOutage, check_tracking_uri, mask_uri
from sensorops.training.callbacks import Callback
from sensorops.training.config import ConfigError, TrainingConfig
from sensorops.training.precision import resolve_precision_mode

logger = logging.getLogger(__name__)

RESOLVED_CONFIG = "resolved_config.json"
MODEL_INPUT_FILE = "model_input.npz"


class TrainingLaunchError(RuntimeError):
    """The workers failed (after all allowed restarts)."""


@dataclass(frozen=True)
class LaunchPlan:
    """Resolved worker layout."""

    nproc_per_node: int
    world_size: int
    device_type: str
    backend: str
    precision: str
    """Resolved precision mode (never ``auto``); the workers train in this mode."""


def plan_launch(
    cfg: TrainingConfig,
    visible_gpus: int | None = None,
    bf16_supported: Callable[[], bool] | None = None,
) -> LaunchPlan:
    """Resolve ``nproc_per_node``/``backend``/``precision`` and check them against the GPUs.

    Args:
        cfg: training config.
        visible_gpus: number of visible CUDA devices (default: ``torch.cuda.device_count()``).
        bf16_supported: native-bf16 probe of the GPU (default
            :func:`~sensorops.training.precision.cuda_bf16_supported`); only called with GPUs.

    Raises:
        ConfigError: more processes than GPUs, nccl without GPUs, a global batch smaller
            than world size x accumulation steps, or bf16 on a GPU without bf16.
    """
    launch = cfg.launch
    gpus = torch.cuda.device_count() if visible_gpus is None else visible_gpus
    if launch.nproc_per_node == "auto":
        nproc = gpus if gpus > 0 else launch.cpu_workers
    else:
        nproc = int(launch.nproc_per_node)
        if gpus > 0 and nproc > gpus:
            raise ConfigError(
                f"training.trainer.launch.nproc_per_node={nproc} is more than the {gpus} visible GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}); "
                f"use 'auto' or at most {gpus}"
            )
    device_type = "cuda" if gpus > 0 else "cpu"
    backend = launch.backend
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl" and device_type != "cuda":
        raise ConfigError(
            "training.trainer.launch.backend 'nccl' needs GPUs but none are visible; use 'gloo' or 'auto'"
        )
    world = nproc * launch.nnodes
    need = world * cfg.optimizer.grad_accum_steps
    if cfg.data.batch_size < world:
        raise ConfigError(
            f"training.trainer.data.batch_size={cfg.data.batch_size} (global batch) is smaller than the "
            f"world size {world} ({launch.nnodes} node(s) x {nproc} process(es)); raise batch_size or lower nproc_per_node"
        )
    if cfg.data.batch_size < need:
        raise ConfigError(
            f"training.trainer.data.batch_size={cfg.data.batch_size} is smaller than world size {world} x "
            f"optimizer.grad_accum_steps {cfg.optimizer.grad_accum_steps} = {need}"
        )
    if cfg.data.batch_size % need:
        logger.warning(
            "global batch %d is not a multiple of %d; using %d",
            cfg.data.batch_size,
            need,
            cfg.data.batch_size // need * need,
        )
    if cfg.precision in ("bf16", "fp16", "tf32") and device_type == "cpu":
        logger.warning(
            "precision %s on CPU: %s",
            cfg.precision,
            "autocast on CPU" if cfg.precision != "tf32" else "same as fp32",
        )
    precision = resolve_precision_mode(cfg.precision, device_type, bf16_supported)
    return LaunchPlan(nproc, world, device_type, backend, precision)


def check_model_input(mi: ModelInput, cfg: TrainingConfig, source: str) -> None:
    """Everything training and evaluation need from the model input, checked up front.

    Raises:
        ModelInputError: empty splits, fewer than two classes in train, or labels in val/test
            whose class never occurs in train; the message names ``source``.
    """
    counts = mi.counts()
    empty = [s for s, n in counts.items() if n == 0]
    if empty:
        raise ModelInputError(
            f"model input {source} has empty split(s) {empty} (counts {counts}); "
            f"training needs train, val and test series"
        )
    train_classes = set(mi.y["train"].tolist())
    if len(train_classes) < 2:
        raise ModelInputError(
            f"model input {source}: the train split has {len(train_classes)} class(es); need >= 2"
        )
    for split in ("val", "test"):
        unseen = sorted(set(mi.y[split].tolist()) - train_classes)
        if unseen:
            names = [mi.classes[i] for i in unseen]
            raise ModelInputError(
                f"model input {source}: {split} has class(es) {names} that never occur in train"
            )
    if not all(mi.X[s].dtype == "float32" for s in mi.X):
        raise ModelInputError(
            f"model input {source}: X arrays must be float32; got {[str(mi.X[s].dtype) for s in mi.X]}"
        )


def _check_resume_compatibility(cfg: TrainingConfig, out: Path, mi: ModelInput) -> None:
    """With ``resume: must``, the existing checkpoint must describe the same classes and channels."""
    if cfg.checkpoint.resume != "must":
        return
    from sensorops.architectures import read_checkpoint
    from sensorops.training.checkpoint import LAST, checkpoint_dir

    path = checkpoint_dir(out) / LAST
    meta = read_checkpoint(path)["metadata"]
    for key, have in (("classes", list(mi.classes)), ("channels", list(mi.channels))):
        if list(meta.get(key, [])) != have:
            raise ModelInputError(
                f"model input {key} {have} do not match checkpoint {path} ({meta.get(key)}); "
                f"set training.trainer.checkpoint.resume to 'auto' to start fresh"
            )


def bound_batch_size(cfg: TrainingConfig, plan: LaunchPlan, n_train: int) -> TrainingConfig:
    """``cfg`` with a global batch no larger than the training split (with a warning).

    A batch larger than the data only repeats samples (the sampler pads every rank to the same
    count) and made the run summary report more samples than exist. The bound is ``n_train``
    rounded down to a multiple of world size x gradient accumulation (at least that product).
    """
    if cfg.data.batch_size <= n_train:
        return cfg
    need = plan.world_size * cfg.optimizer.grad_accum_steps
    bounded = max(need, n_train // need * need)
    logger.warning(
        "training.trainer.data.batch_size=%d exceeds the %d training series; using %d",
        cfg.data.batch_size,
        n_train,
        bounded,
    )
    return cfg.replace(data={"batch_size": bounded})


def check_resume_checkpoint(cfg: TrainingConfig, out: Path) -> None:
    """A ``last.pt`` that the workers would resume from must load, checked before they start.

    A truncated or corrupt file otherwise fails every worker (and every restart) one by one.

    Raises:
        CheckpointError: names the file, what is wrong, and the two ways out.
    """
    if cfg.checkpoint.resume == "never":
        return
    from sensorops.architectures import CheckpointError, read_checkpoint
    from sensorops.training.checkpoint import LAST, checkpoint_dir

    path = checkpoint_dir(out) / LAST
    if not path.is_file():
        return  # auto: start fresh; must: the workers say what is missing
    try:
        read_checkpoint(path)
    except CheckpointError as exc:
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {str(cause)[:200]}" if cause else str(exc)
        raise CheckpointError(
            f"cannot resume from {path} ({path.stat().st_size} bytes): it does not load ({why}). "
            "Start fresh with --params=training.trainer.checkpoint.resume=never, or delete the "
            "file; nothing was started."
        ) from None


def _tracking_uri(cfg: TrainingConfig) -> str:
    import mlflow

    return cfg.mlflow.tracking_uri or mlflow.get_tracking_uri()


@dataclass(frozen=True)
class ChildRun:
    """The MLflow training run the launcher created for the workers."""

    tracking_uri: str
    run_id: str
    parent_run_id: str | None


def _create_child_run(cfg: TrainingConfig) -> ChildRun:
    """Create the training run under the active MLflow run (or in the configured experiment)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = _tracking_uri(cfg)
    client = MlflowClient(tracking_uri=uri)
    parent = mlflow.active_run()
    tags = {"sensorops.component": "training"}
    if parent is not None:
        experiment_id = parent.info.experiment_id
        tags["mlflow.parentRunId"] = parent.info.run_id
    else:
        name = cfg.mlflow.experiment_name or "sensorops"
        exp = client.get_experiment_by_name(name)
        experiment_id = exp.experiment_id if exp else client.create_experiment(name)
    run = client.create_run(experiment_id, run_name=cfg.mlflow.run_name, tags=tags)
    return ChildRun(uri, run.info.run_id, parent.info.run_id if parent else None)


def prepare(
    cfg: TrainingConfig,
    plan: LaunchPlan,
    out: Path,
    model_input_path: Path,
    run: ChildRun | None,
) -> TrainingConfig:
    """The config the workers read: ``cfg`` with the run-time fields filled in, in one replace.

    Run directory and model input as absolute paths, the precision the plan resolved (never
    ``auto``), and the MLflow run the workers log into.
    """
    fields: dict[str, Any] = {
        "output_dir": str(out),
        "precision": plan.precision,
        "model_input_path": str(model_input_path),
    }
    if run is not None:
        fields["mlflow"] = {
            "tracking_uri": run.tracking_uri,
            "run_id": run.run_id,
            "parent_run_id": run.parent_run_id,
        }
    return cfg.replace(**fields)


LOOPBACK = "127.0.0.1"


def single_node_loopback(cfg: TrainingConfig) -> bool:
    """One node whose rendezvous endpoint is unset or on loopback: nothing needs the network."""
    launch = cfg.launch
    if launch.nnodes != 1:
        return False
    if not launch.rdzv_endpoint:
        return True
    host = launch.rdzv_endpoint.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@contextlib.contextmanager
def loopback_stores() -> Iterator[None]:
    """Every ``TCPStore`` *server* the elastic agent creates in this block listens on 127.0.0.1.

    PyTorch's rendezvous and agent stores (``torch.distributed.TCPStore(is_master=True)``) bind
    every interface whatever host they are given: an unauthenticated key-value store reachable
    from the network, for a single-node run that never needs it. TCPStore can serve a socket we
    bound ourselves (``master_listen_fd``); this block hands it one bound to 127.0.0.1 (port as
    asked, 0 = ephemeral). Clients (the workers) are untouched. The agent runs in this process,
    so the two names it looks TCPStore up by are swapped for the block and restored after.
    """
    import torch.distributed as dist
    import torch.distributed.elastic.rendezvous.c10d_rendezvous_backend as c10d_backend

    original = dist.TCPStore

    def tcp_store(host_name: str, port: int = 0, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("is_master") and kwargs.get("master_listen_fd") is None and not args:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((LOOPBACK, int(port)))
                sock.listen(512)
            except OSError:
                sock.close()
                raise RuntimeError(
                    f"cannot bind the rendezvous store to {LOOPBACK}:{port}"
                ) from None
            kwargs["master_listen_fd"] = sock.detach()
        return original(host_name, port, *args, **kwargs)

    dist.TCPStore, c10d_backend.TCPStore = tcp_store, tcp_store  # type: ignore[misc]
    try:
        yield
    finally:
        dist.TCPStore, c10d_backend.TCPStore = original, original  # type: ignore[misc]


def _elastic_config(cfg: TrainingConfig, plan: LaunchPlan) -> Any:
    """The ``elastic_launch`` settings torchrun would derive from the same flags.

    Single-node runs rendezvous on 127.0.0.1 and give the workers 127.0.0.1 as their master
    address (``local_addr``; torch would look up the machine's FQDN); multi-node runs name the
    endpoint (and the interface) explicitly, see ``pipelines/torchrun_multi_node.sh``.
    """
    from torch.distributed.launcher.api import LaunchConfig

    launch = cfg.launch
    return LaunchConfig(
        local_addr=LOOPBACK if single_node_loopback(cfg) else None,
        min_nodes=launch.nnodes,
        max_nodes=launch.nnodes,
        nproc_per_node=plan.nproc_per_node,
        run_id=os.environ.get("TORCHELASTIC_RUN_ID")
        or (f"sensorops-{uuid.uuid4().hex[:12]}" if launch.nnodes == 1 else "sensorops-training"),
        rdzv_backend=launch.rdzv_backend,
        rdzv_endpoint=launch.rdzv_endpoint or f"{LOOPBACK}:0",
        # as torchrun: --node_rank only matters to the static rendezvous
        rdzv_configs={"rank": launch.node_rank} if launch.rdzv_backend == "static" else {},
        max_restarts=launch.max_restarts,
        monitor_interval=launch.monitor_interval_s,
        start_method="spawn",
    )


def _terminate(run: ChildRun, status: str) -> None:
    """Close the training run; a server that is gone leaves it for the next run's hygiene."""
    from mlflow.tracking import MlflowClient

    from sensorops.tracking import looks_unreachable, stop_retrying

    try:
        MlflowClient(tracking_uri=run.tracking_uri).set_terminated(run.run_id, status)
    except Exception as exc:
        if not looks_unreachable(exc):
            raise
        stop_retrying()
        logger.warning("could not mark MLflow run %s %s: the server is gone", run.run_id, status)


def launch_training(
    cfg: TrainingConfig | dict[str, Any],
    model_input: ModelInput | str | os.PathLike[str],
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Validate, launch the workers, wait, and return rank 0's training summary.

    The config is resolved once: :func:`plan_launch`, the checks, the child run, then
    :func:`prepare` (one ``replace``), written as ``resolved_config.json`` for the workers.

    Args:
        cfg: the ``training.trainer`` parameters (dict) or a :class:`TrainingConfig`.
        model_input: the loaded model input (re-saved into the run directory for the workers) or
            the path of a model input ``.npz`` file.
        callbacks: extra trainer callbacks for every worker (pickled for ``spawn``), e.g.
            :class:`~sensorops.training.faults.KillWorker` in the restart tests.

    Returns:
        The summary dict: ``best_checkpoint``, ``last_checkpoint``, ``model_name``,
        ``mlflow_child_run_id``, ``best_val_metric`` (+ name, step), ``final_step``,
        ``resumed_from_step``, ``restarts``, ``history`` (per-epoch validation), ...

    Raises:
        ConfigError / ModelInputError / TrackingServerUnreachable: before any worker starts.
        TrainingLaunchError: the workers failed after ``max_restarts`` restarts.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    from sensorops.atomic import atomic_write_text
    from sensorops.training.train import SUMMARY_FILE, run_worker

    if not isinstance(cfg, TrainingConfig):
        cfg = TrainingConfig.from_dict(cfg)
    plan = plan_launch(cfg)
    out = Path(cfg.output_dir).resolve()
    if isinstance(model_input, ModelInput):
        mi, mi_path, source = model_input, out / MODEL_INPUT_FILE, "mi_model_input"
    else:
        mi_path = Path(model_input).resolve()
        mi, source = load_model_input(mi_path), str(mi_path)
    check_model_input(mi, cfg, source)
    cfg = bound_batch_size(cfg, plan, len(mi.y["train"]))
    check_resume_checkpoint(cfg, out)
    _check_resume_compatibility(cfg, out, mi)
    if cfg.mlflow.enabled:
        check_tracking_uri(_tracking_uri(cfg))
    # -- all checks passed: write the run directory, create the MLflow run, launch -------------
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model_input, ModelInput):
        save_model_input(mi, mi_path)
    run = _create_child_run(cfg) if cfg.mlflow.enabled else None
    cfg = prepare(cfg, plan, out, mi_path, run)
    config_path = out / RESOLVED_CONFIG
    atomic_write_text(config_path, cfg.to_json())
    logger.info(
        "launching %d worker(s) x %d node(s) (%s, %s); config %s",
        plan.nproc_per_node,
        cfg.launch.nnodes,
        plan.device_type,
        plan.backend,
        config_path,
    )
    status = "FAILED"
    bind = loopback_stores() if single_node_loopback(cfg) else contextlib.nullcontext()
    try:
        with bind:
            results = elastic_launch(_elastic_config(cfg, plan), run_worker)(
                str(config_path), tuple(callbacks)
            )
        status = "FINISHED"
    except ChildFailedError as exc:
        raise TrainingLaunchError(
            f"training workers failed after {cfg.launch.max_restarts} restart(s); run directory "
            f"{out}:\n{exc.format_msg()}"
        ) from exc
    finally:
        if run is not None:
            _terminate(run, status)
    summary = results.get(0) if results else None
    if summary is None:  # this node holds no rank 0: read what rank 0 wrote (shared filesystem)
        import json

        summary = json.loads((out / SUMMARY_FILE).read_text())
    summary = dict(summary)
    reports = [*(results or {}).values(), summary]
    outage = [str(r["tracking_outage"]) for r in reports if r and r.get("tracking_outage")]
    if outage and run is not None:
        from sensorops.tracking import stop_retrying

        stop_retrying()  # closing the Kedro run and tagging the failure: one quick try each
        raise TrackingOutage(
            f"MLflow tracking server {mask_uri(run.tracking_uri)} stopped answering during training "
            f"({outage[0]}). Training itself finished: checkpoints in {out}. The MLflow runs stay "
            "RUNNING until the next run marks them KILLED; rerun once the server answers again."
        )
    summary["mlflow_child_run_id"] = run.run_id if run is not None else None
    summary["mlflow_parent_run_id"] = run.parent_run_id if run is not None else None
    summary["resolved_config"] = str(config_path)
    best = Path(str(summary.get("best_checkpoint", "")))
    if best.is_file():  # content-addressed lineage: export and compression verify this hash
        from sensorops.modeling.metrics import file_sha256

        summary["best_checkpoint_sha256"] = file_sha256(best)
    return summary
