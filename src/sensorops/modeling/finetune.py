"""A short, plain single-process fine-tune (no DDP): Adam + cross-entropy on the training split."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from torch import nn

from sensorops.modeling.config import FinetuneConfig
from sensorops.modeling.errors import ModelingError

logger = logging.getLogger(__name__)


def finetune(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    config: FinetuneConfig,
    step_context: Callable[[], AbstractContextManager[None]] | None = None,
    after_step: Callable[[], None] | None = None,
) -> list[float]:
    """Fine-tune ``model`` in place.

    Args:
        model: maps ``(batch, time, channels)`` to logits.
        X: float32 ``(n, time, channels)`` training inputs.
        y: int64 ``(n,)`` class codes.
        config: epochs, learning rate, batch size, weight decay, seed.
        step_context: entered around each forward/backward (e.g. 4-bit fake quantization).
        after_step: called after every optimizer step (e.g. re-apply a pruning mask).

    Returns:
        Mean training loss per epoch. The model is left in eval mode.
    """
    if X.ndim != 3 or len(X) != len(y) or len(X) == 0:
        raise ModelingError(
            f"fine-tune needs X (n, time, channels) and y (n,) with n >= 1; got {X.shape} and {y.shape}"
        )
    if config.epochs == 0:
        model.eval()
        return []
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    criterion = nn.CrossEntropyLoss()
    context = step_context or nullcontext
    losses: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(Xt), generator=generator)
        total, count = 0.0, 0
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            with context():
                loss = criterion(model(Xt[idx]), yt[idx])
                loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses.append(total / count)
        logger.info("fine-tune epoch %d/%d: loss %.4f", epoch + 1, config.epochs, losses[-1])
    model.eval()
    return losses
