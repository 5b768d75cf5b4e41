"""AdamW with decay on weight matrices only, and the warmup + cosine (with restarts) schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from sensorops.training.config import OptimizerConfig, ScheduleConfig

_NO_DECAY_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.Embedding)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed and an undecayed group.

    Decayed: weights of convolutions and linear maps, including LSTM ``weight_ih``/``weight_hh``
    and attention ``in_proj_weight`` (they are linear maps too). Not decayed: biases, every
    parameter of normalization layers, and anything 1-D.

    Returns:
        ``[{"params": decayed, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]``.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, _NO_DECAY_TYPES) or param.ndim < 2 or "bias" in name:
                no_decay.append(param)
            else:
                decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
    )


def lr_factor(step: int, total_steps: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps``; then ``restarts + 1`` cosine cycles (lengths growing by
    ``restart_mult``) from 1 down to ``min_lr_ratio``, each restarting at 1.
    """
    warm = cfg.warmup_steps
    if warm and step < warm:
        return (step + 1) / warm
    remaining = max(total_steps - warm, 1)
    cycles = cfg.restarts + 1
    # cycle lengths L, L*m, L*m^2 ... summing to `remaining`
    weights = [cfg.restart_mult**i for i in range(cycles)]
    unit = remaining / sum(weights)
    pos = float(step - warm)
    for w in weights:
        length = unit * w
        if pos < length or w is weights[-1]:
            progress = min(pos / length, 1.0) if length > 0 else 1.0
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        pos -= length
    return cfg.min_lr_ratio  # pragma: no cover - loop always returns


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, cfg: ScheduleConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over :func:`lr_factor`; its state_dict is just the step counter."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, cfg))
