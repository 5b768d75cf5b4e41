"""Training entry point: one process per worker, launched by torchrun or by the Kedro node.

Single node, 2 CPU workers (gloo) or one worker per GPU (nccl)::

    torchrun --standalone --nproc_per_node=2 -m sensorops.training.train \\
        --config data/06_models/training/resolved_config.json

Two nodes (run on each node, NODE_RANK=0 and 1)::

    torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node=gpu \\
        --rdzv_backend=c10d --rdzv_endpoint=$HEAD_HOST:29400 --rdzv_id=$JOB_ID --max_restarts=1 \\
        -m sensorops.training.train --config resolved_config.json

Straight from the project's YAML parameters (no Kedro run needed), with overrides::

    torchrun --standalone --nproc_per_node=2 -m sensorops.training.train \
        --config conf/base/parameters_training.yml --model-input data/05_model_input/model_input.npz \
        --set loop.epochs=5 --set precision=fp32 --set mlflow.enabled=false

One process without torchrun (no process group)::

    python -m sensorops.training.train --config resolved_config.json

``--config`` takes the resolved JSON or a YAML file holding either the ``training.trainer``
parameters themselves or a whole ``parameters_training.yml`` (``training: {trainer: ...}``).
``--set key=value`` (repeatable) overrides one dotted key below ``training.trainer``; the value is
read as YAML (``5``, ``null``, ``fp32``, ``[1, 2]``). ``kedro run --pipelines=training`` writes
``resolved_config.json`` into the run directory (``training.trainer.output_dir``) and launches the
same function, :func:`run_worker`, through ``torch.distributed.launcher.api.elastic_launch``. The
config names the model input ``.npz`` that every worker reads itself; ``--model-input`` /
``--output-dir`` override it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from sensorops.atomic import atomic_write_text
from sensorops.model_input import load_model_input
from sensorops.training.callbacks import Callback
from sensorops.training.config import ConfigError, TrainingConfig
from sensorops.training.distributed import setup_distributed, teardown_distributed
from sensorops.training.loop import Trainer
from sensorops.training.run_logging import RunLogger

logger = logging.getLogger(__name__)

SUMMARY_FILE = "training_summary.json"


def _configure_threads(cfg: TrainingConfig) -> None:
    n = cfg.launch.threads_per_worker
    if n is None and "OMP_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        n = max(1, (os.cpu_count() or 1) // local)
    if n is not None:
        torch.set_num_threads(n)


def train(cfg: TrainingConfig, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Run one worker's share of training; returns the run summary (identical on every rank).

    ``callbacks`` go to the :class:`~sensorops.training.loop.Trainer` after its default ones.
    Rank 0 also writes ``<output_dir>/training_summary.json``.
    """
    if cfg.model_input_path is None:
        raise ConfigError("training.trainer.model_input_path is not set; pass --model-input PATH")
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = (
            True  # fixed input shapes: let cuDNN pick the fastest kernels
        )
    _configure_threads(cfg)
    ctx = setup_distributed(cfg.launch.backend, cfg.launch.process_group_timeout_s)
    run_logger = RunLogger(cfg.mlflow, ctx)
    status = "FAILED"
    try:
        mi = load_model_input(cfg.model_input_path)
        run_id = run_logger.start(params={"training": cfg.fingerprint_dict()})
        trainer = Trainer(cfg, ctx, mi, run_logger, callbacks)
        summary = trainer.fit()
        summary["mlflow_child_run_id"] = run_id
        summary["restart_count"] = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if ctx.is_main:
            best = Path(summary["best_checkpoint"])
            if cfg.mlflow.log_checkpoint_artifact and best.is_file():
                run_logger.log_artifact(str(best), "checkpoints")
            run_logger.set_tags(
                {"best_checkpoint": best, "best_val_metric": summary["best_val_metric"]}
            )
        status = "FINISHED"
        run_logger.close(
            status
        )  # flushes the queued metrics: an outage shows up here at the latest
        # the launcher fails the run once every worker is done (None: tracking went through)
        summary["tracking_outage"] = run_logger.outage
        if ctx.is_main:
            atomic_write_text(Path(cfg.output_dir) / SUMMARY_FILE, _to_json(summary))
        return summary
    finally:
        run_logger.close(status)
        teardown_distributed()


def _to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True, default=str)


@record
def run_worker(config_path: str, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Module-level worker entry point for ``elastic_launch`` (picklable for spawn)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [rank %(process)d] %(name)s: %(message)s",
    )
    return train(TrainingConfig.from_json(config_path), callbacks)


def load_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``training.trainer`` mapping from a resolved JSON or a YAML parameters file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"training config {path} does not exist; pass the resolved JSON a Kedro run writes "
            f"(<output_dir>/resolved_config.json) or a YAML such as conf/base/parameters_training.yml"
        )
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"training config {path} is not valid JSON: {exc}") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"training config {path} is not valid YAML: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"training"}:
        training = data["training"]
        if not isinstance(training, dict) or "trainer" not in training:
            raise ConfigError(f"training config {path}: 'training' has no 'trainer' mapping")
        data = training["trainer"]
    if not isinstance(data, dict):
        raise ConfigError(
            f"training config {path} must hold a mapping (the training.trainer parameters); "
            f"got {type(data).__name__}"
        )
    return data


def apply_override(params: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set key=value`` (dotted key below ``training.trainer``; YAML value) in place."""
    import yaml

    key, sep, raw = assignment.partition("=")
    key = key.strip().removeprefix("training.trainer.")
    if not sep or not key:
        raise ConfigError(f"--set expects key=value (e.g. loop.epochs=5); got {assignment!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: {raw!r} is not a YAML value: {exc}") from exc
    *parents, leaf = key.split(".")
    node = params
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            dotted = ".".join(parents[: i + 1])
            raise ConfigError(f"--set {key}: training.trainer.{dotted} is {child!r}, not a section")
        node = child
    node[leaf] = value


@record
def main(argv: list[str] | None = None) -> int:
    """``python -m sensorops.training.train --config CONFIG [--set k=v ...] [--model-input X] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m sensorops.training.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--config",
        required=True,
        help="resolved training config (JSON) or YAML parameters (training.trainer)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a dotted training.trainer key, e.g. --set loop.epochs=5 (repeatable)",
    )
    parser.add_argument("--model-input", default=None, help="override model_input_path")
    parser.add_argument("--output-dir", default=None, help="override output_dir")
    parser.add_argument(
        "--mlflow-run-id",
        default=None,
        help="log into this existing run (default: rank 0 creates a new run, nested under the "
        "config's parent_run_id when set)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the config's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    params = load_params(args.config)
    for assignment in args.overrides:
        apply_override(params, assignment)
    # a config written by the Kedro launcher names the run it created; that run is finished, so a
    # run by hand gets its own run unless told otherwise
    mlflow = params.setdefault("mlflow", {})
    if not isinstance(mlflow, dict):
        raise ConfigError(f"training.trainer.mlflow must be a mapping; got {mlflow!r}")
    mlflow["run_id"] = args.mlflow_run_id
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        mlflow["tracking_uri"] = uri
    if args.model_input:
        params["model_input_path"] = args.model_input
    if args.output_dir:
        params["output_dir"] = args.output_dir
    summary = train(TrainingConfig.from_dict(params))
    logger.info(
        "training done: best %s=%s at step %s -> %s",
        summary["best_val_metric_name"],
        summary["best_val_metric"],
        summary["best_step"],
        summary["best_checkpoint"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
