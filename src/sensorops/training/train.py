"""Training entry point: one process per worker, launched by torchrun or by the Kedro node.

Single node, 2 CPU workers (gloo) or one worker per GPU (nccl)::

    torchrun --standalone --nproc_per_node=2 -m sensorops.training.train \\
        --config data/06_models/training/resolved_config.json

Two nodes (run on each node, NODE_RANK=0 and 1)::

    torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node=gpu \\
        --rdzv_backend=c10d --rdzv_endpoint=$HEAD_HOST:29400 --rdzv_id=$JOB_ID --max_restarts=1 \\
        -m sensorops.training.train --config resolved_config.json

One process without torchrun (no process group)::

    python -m sensorops.training.train --config resolved_config.json

``kedro run --pipelines=training`` writes ``resolved_config.json`` into the run directory
(``training.trainer.output_dir``) and launches the same function, :func:`run_worker`, through
``torch.distributed.launcher.api.elastic_launch``. The config names the model input ``.npz`` that
every worker reads itself; ``--model-input`` / ``--output-dir`` override it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from sensorops.atomic import atomic_write_text
from sensorops.model_input import load_model_input
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


def train(cfg: TrainingConfig) -> dict[str, Any]:
    """Run one worker's share of training; returns the run summary (identical on every rank).

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
        trainer = Trainer(cfg, ctx, mi, run_logger)
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
            atomic_write_text(Path(cfg.output_dir) / SUMMARY_FILE, _to_json(summary))
        status = "FINISHED"
        return summary
    finally:
        run_logger.close(status)
        teardown_distributed()


def _to_json(summary: dict[str, Any]) -> str:
    import json

    return json.dumps(summary, indent=2, sort_keys=True, default=str)


@record
def run_worker(config_path: str) -> dict[str, Any]:
    """Module-level worker entry point for ``elastic_launch`` (picklable for spawn)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [rank %(process)d] %(name)s: %(message)s",
    )
    return train(TrainingConfig.from_json(config_path))


@record
def main(argv: list[str] | None = None) -> int:
    """``python -m sensorops.training.train --config resolved.json [--model-input X] [--output-dir D]``."""
    parser = argparse.ArgumentParser(
        prog="python -m sensorops.training.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", required=True, help="resolved training config (JSON)")
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
    cfg = TrainingConfig.from_json(args.config)
    # a config written by the Kedro launcher names the run it created; that run is finished, so a
    # run by hand gets its own run unless told otherwise
    overrides: dict[str, Any] = {"mlflow": {"run_id": args.mlflow_run_id}}
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        overrides["mlflow"]["tracking_uri"] = uri
    if args.model_input:
        overrides["model_input_path"] = args.model_input
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if overrides:
        cfg = cfg.replace(**overrides)
    summary = train(cfg)
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
