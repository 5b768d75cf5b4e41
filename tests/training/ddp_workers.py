"""Worker functions for tests that launch real gloo process groups (module-level: spawn pickles them)."""

from __future__ import annotations

from typing import Any

import torch

from sensorops.model_input import load_model_input
from sensorops.training.config import TrainingConfig
from sensorops.training.distributed import setup_distributed, teardown_distributed
from sensorops.training.loop import Trainer


def one_step_worker(config_json: str) -> dict[str, Any]:
    """Build the real Trainer, take one optimizer step, return this rank's grads, params and batch."""
    cfg = TrainingConfig.from_dict(__import__("json").loads(config_json))
    ctx = setup_distributed("gloo")
    try:
        trainer = Trainer(cfg, ctx, load_model_input(cfg.model_input_path))
        trainer.batches.set_epoch(0)
        idx = next(trainer.batches.iter_from(0))
        x, y = trainer.train.X[idx], trainer.train.y[idx]
        loss = trainer.loss_fn(trainer.ddp(x), y)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
        trainer._apply_gradients()
        params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        return {
            "rank": ctx.rank,
            "grads": grads,
            "params": params,
            "indices": idx.tolist(),
            "loss": float(loss),
        }
    finally:
        teardown_distributed()
