"""Pruning: structured (physically removes units/channels) and global unstructured magnitude.

Structured pruning removes a share ``amount`` of the units of every prunable group, keeping the
units whose weights have the largest L2 norm, and rebuilds the layers smaller, so the model has
fewer parameters and less compute. Groups are found by module structure:

- an ``nn.LSTM`` at ``model.lstm`` whose output feeds ``model.pool.proj`` and ``model.head``
  (the LSTM-attention classifier): hidden units of every layer (unit score = L2 norm of its
  four gate rows in ``weight_ih`` and ``weight_hh``);
- a residual block with ``conv1 -> bn1 -> ... -> conv2``: the inner channels (``conv1`` output
  channels, ``bn1``, ``conv2`` input channels);
- an ``nn.Sequential`` MLP ``Linear -> (element-wise ops) -> Linear``: the hidden units;
- an attention pool with ``proj`` (Linear) and ``score`` (Linear): ``proj`` output units.

Channels tied by residual additions (the ResNet stream, the transformer ``d_model``) are not
pruned. Unstructured pruning zeroes the globally smallest-magnitude share of all weight
matrices (``ndim >= 2``); the masks can be re-applied during fine-tuning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from sensorops.architectures import count_parameters
from sensorops.modeling.errors import PruningError

logger = logging.getLogger(__name__)

_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Dropout, nn.Tanh, nn.SiLU, nn.Identity, nn.LeakyReLU, nn.ELU)


@dataclass(frozen=True)
class PrunedGroup:
    """One group of units pruned together: where, what kind, and how many units before/after."""

    module: str
    kind: str
    units_before: int
    units_after: int


@dataclass(frozen=True)
class StructuredPruneReport:
    """Result of :func:`structured_prune`.

    Attributes:
        groups: every pruned group.
        params_before / params_after: parameter counts of the whole model.
        units_removed_share: removed units / units of all groups.
    """

    groups: list[PrunedGroup]
    params_before: int
    params_after: int

    @property
    def units_removed_share(self) -> float:
        before = sum(g.units_before for g in self.groups)
        after = sum(g.units_after for g in self.groups)
        return (before - after) / before if before else 0.0

    @property
    def params_removed_share(self) -> float:
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["units_removed_share"] = self.units_removed_share
        out["params_removed_share"] = self.params_removed_share
        return out


def _keep(scores: torch.Tensor, amount: float) -> torch.Tensor:
    """Sorted indices of the units to keep: drop ``round(amount * n)`` lowest scores (keep >= 1)."""
    n = scores.numel()
    n_drop = min(int(round(amount * n)), n - 1)
    keep = torch.topk(scores, n - n_drop, largest=True).indices
    return torch.sort(keep).values


def _linear(
    old: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> nn.Linear:
    w = old.weight.detach()
    b = old.bias.detach() if old.bias is not None else None
    if rows is not None:
        w = w[rows]
        b = b[rows] if b is not None else None
    if cols is not None:
        w = w[:, cols]
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def _conv1d(
    old: nn.Conv1d, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None
) -> nn.Conv1d:
    if old.groups != 1:
        raise PruningError(f"cannot prune grouped convolution {old}")
    w = old.weight.detach()
    b = old.bias.detach() if old.bias is not None else None
    if out_idx is not None:
        w = w[out_idx]
        b = b[out_idx] if b is not None else None
    if in_idx is not None:
        w = w[:, in_idx]
    new = nn.Conv1d(
        w.shape[1],
        w.shape[0],
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=b is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def _batchnorm1d(old: nn.BatchNorm1d, idx: torch.Tensor) -> nn.BatchNorm1d:
    new = nn.BatchNorm1d(
        len(idx),
        eps=old.eps,
        momentum=old.momentum,
        affine=old.affine,
        track_running_stats=old.track_running_stats,
    )
    with torch.no_grad():
        if old.affine:
            new.weight.copy_(old.weight.detach()[idx])
            new.bias.copy_(old.bias.detach()[idx])
        if old.track_running_stats:
            new.running_mean.copy_(old.running_mean[idx])
            new.running_var.copy_(old.running_var[idx])
            new.num_batches_tracked.copy_(old.num_batches_tracked)
    return new


def _gate_rows(idx: torch.Tensor, hidden: int) -> torch.Tensor:
    return torch.cat([idx + g * hidden for g in range(4)])


def _prune_lstm_model(model: nn.Module, amount: float) -> list[PrunedGroup]:
    lstm: nn.LSTM = model.lstm  # type: ignore[assignment]
    if lstm.bidirectional or lstm.proj_size:
        raise PruningError("structured pruning supports unidirectional LSTMs without proj_size")
    hidden, layers = lstm.hidden_size, lstm.num_layers
    keeps: list[torch.Tensor] = []
    for layer in range(layers):
        w_ih = getattr(lstm, f"weight_ih_l{layer}").detach()
        w_hh = getattr(lstm, f"weight_hh_l{layer}").detach()
        rows = torch.cat([w_ih, w_hh], dim=1).reshape(4, hidden, -1)  # (gate, unit, fan-in)
        keeps.append(_keep(rows.pow(2).sum(dim=(0, 2)).sqrt(), amount))
    new_hidden = len(keeps[0])
    new = nn.LSTM(
        lstm.input_size,
        new_hidden,
        num_layers=layers,
        bias=lstm.bias,
        batch_first=lstm.batch_first,
        dropout=lstm.dropout,
    )
    with torch.no_grad():
        for layer, keep in enumerate(keeps):
            rows = _gate_rows(keep, hidden)
            w_ih = getattr(lstm, f"weight_ih_l{layer}").detach()[rows]
            if layer > 0:
                w_ih = w_ih[:, keeps[layer - 1]]
            getattr(new, f"weight_ih_l{layer}").copy_(w_ih)
            getattr(new, f"weight_hh_l{layer}").copy_(
                getattr(lstm, f"weight_hh_l{layer}").detach()[rows][:, keep]
            )
            if lstm.bias:
                getattr(new, f"bias_ih_l{layer}").copy_(
                    getattr(lstm, f"bias_ih_l{layer}").detach()[rows]
                )
                getattr(new, f"bias_hh_l{layer}").copy_(
                    getattr(lstm, f"bias_hh_l{layer}").detach()[rows]
                )
    last = keeps[-1]
    model.lstm = new
    model.pool.proj = _linear(model.pool.proj, cols=last)
    model.head = _linear(model.head, cols=last)
    return [PrunedGroup("lstm", "lstm_hidden_units", hidden, new_hidden)]


def _prune_residual_block(block: nn.Module, name: str, amount: float) -> PrunedGroup:
    conv1, bn1, conv2 = block.conv1, block.bn1, block.conv2
    keep = _keep(conv1.weight.detach().flatten(1).norm(dim=1), amount)
    block.conv1 = _conv1d(conv1, out_idx=keep)
    block.bn1 = _batchnorm1d(bn1, keep)
    block.conv2 = _conv1d(conv2, in_idx=keep)
    return PrunedGroup(name, "conv_inner_channels", conv1.out_channels, len(keep))


def _prune_mlp(seq: nn.Sequential, name: str, amount: float) -> PrunedGroup:
    first, last = seq[0], seq[len(seq) - 1]
    keep = _keep(first.weight.detach().norm(dim=1), amount)
    seq[0] = _linear(first, rows=keep)
    seq[len(seq) - 1] = _linear(last, cols=keep)
    return PrunedGroup(name, "mlp_hidden_units", first.out_features, len(keep))


def _prune_attention_pool(pool: nn.Module, name: str, amount: float) -> PrunedGroup:
    proj, score = pool.proj, pool.score
    keep = _keep(proj.weight.detach().norm(dim=1), amount)
    pool.proj = _linear(proj, rows=keep)
    pool.score = _linear(score, cols=keep)
    return PrunedGroup(name, "attention_pool_units", proj.out_features, len(keep))


def _is_lstm_model(m: nn.Module) -> bool:
    return (
        isinstance(getattr(m, "lstm", None), nn.LSTM)
        and isinstance(getattr(m, "head", None), nn.Linear)
        and _is_attention_pool(getattr(m, "pool", None))
    )


def _is_residual_block(m: nn.Module) -> bool:
    return (
        isinstance(getattr(m, "conv1", None), nn.Conv1d)
        and isinstance(getattr(m, "bn1", None), nn.BatchNorm1d)
        and isinstance(getattr(m, "conv2", None), nn.Conv1d)
    )


def _is_mlp(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.Sequential)
        and len(m) >= 2
        and isinstance(m[0], nn.Linear)
        and isinstance(m[len(m) - 1], nn.Linear)
        and all(isinstance(x, _ELEMENTWISE) for x in list(m)[1:-1])
    )


def _is_attention_pool(m: object) -> bool:
    return (
        isinstance(m, nn.Module)
        and isinstance(getattr(m, "proj", None), nn.Linear)
        and isinstance(getattr(m, "score", None), nn.Linear)
    )


def structured_prune(model: nn.Module, amount: float = 0.2) -> StructuredPruneReport:
    """Physically remove ``amount`` of the units of every prunable group of ``model`` (in place).

    Args:
        model: a classifier (see the module docstring for the groups that are recognised).
        amount: share of units to remove per group, in ``(0, 1)``.

    Returns:
        :class:`StructuredPruneReport`; the model is modified in place and left in eval mode.

    Raises:
        PruningError: ``amount`` outside ``(0, 1)`` or nothing prunable found.
    """
    if not 0.0 < amount < 1.0:
        raise PruningError(f"structured.amount must be in (0, 1); got {amount}")
    before = count_parameters(model)
    groups: list[PrunedGroup] = []
    if _is_lstm_model(model):
        groups.extend(_prune_lstm_model(model, amount))
    handlers: list[
        tuple[Callable[[nn.Module], bool], Callable[[nn.Module, str, float], PrunedGroup]]
    ] = [
        (_is_residual_block, _prune_residual_block),
        (_is_mlp, _prune_mlp),
        (_is_attention_pool, _prune_attention_pool),
    ]
    for name, module in list(model.named_modules()):
        for matches, prune in handlers:
            if matches(module):
                groups.append(prune(module, name, amount))
                break
    if not groups:
        raise PruningError(
            f"{type(model).__name__} has no structure that structured pruning knows "
            "(LSTM + attention pool, conv1/bn1/conv2 residual blocks, Linear-act-Linear MLPs, attention pools)"
        )
    model.eval()
    report = StructuredPruneReport(
        groups=groups, params_before=before, params_after=count_parameters(model)
    )
    logger.info(
        "structured pruning: %d groups, %.1f%% units removed, params %d -> %d",
        len(groups),
        100 * report.units_removed_share,
        before,
        report.params_after,
    )
    return report


def cubic_sparsity(step: int, total: int, final: float, ramp_fraction: float = 1.0) -> float:
    """Zhu & Gupta (2017) gradual pruning: ``s_t = s_f * (1 - (1 - t / T)**3)``, ``T = ramp * total``.

    Sparsity grows fast at first (redundant weights go early) and slowly near the target, and
    stays at ``final`` after the ramp.
    """
    ramp = max(1, int(round(ramp_fraction * total)))
    progress = min(1.0, max(0, step) / ramp)
    return float(final * (1.0 - (1.0 - progress) ** 3))


class MagnitudePruner:
    """Global unstructured magnitude pruning of all weight matrices (``ndim >= 2``).

    ``fit`` zeroes the ``sparsity`` share of weight values with the smallest ``|w|`` across the
    whole model and stores the masks; ``update(s)`` re-computes the masks at a new sparsity
    (gradual pruning: pruned values are zero, so they stay pruned); ``apply`` re-zeroes them
    (call after each fine-tune step); gradient hooks keep pruned entries at zero gradient.

    Attributes:
        masks_: parameter name -> bool mask (True = kept).
        threshold_: the global magnitude threshold.
        current_sparsity_: the sparsity the masks hold now.
    """

    def __init__(self, sparsity: float = 0.5) -> None:
        self.sparsity = sparsity

    def fit(self, model: nn.Module, initial_sparsity: float | None = None) -> MagnitudePruner:
        """Take the model's weight matrices and prune them to ``initial_sparsity`` (default:
        the target ``sparsity``; 0 = masks only, nothing pruned yet)."""
        if not 0.0 < self.sparsity < 1.0:
            raise PruningError(f"unstructured.sparsity must be in (0, 1); got {self.sparsity}")
        self.params_ = {n: p for n, p in model.named_parameters() if p.ndim >= 2}
        if not self.params_:
            raise PruningError(f"{type(model).__name__} has no weight matrices to prune")
        self.masks_: dict[str, torch.Tensor] = {}
        for name, p in self.params_.items():
            p.register_hook(lambda grad, n=name: grad * self.masks_[n])
        self.update(self.sparsity if initial_sparsity is None else initial_sparsity)
        return self

    def update(self, sparsity: float) -> None:
        """Masks that keep the ``1 - sparsity`` largest ``|w|`` of all weight matrices; applied."""
        magnitudes = torch.cat([p.detach().abs().flatten() for p in self.params_.values()])
        n_prune = int(round(sparsity * magnitudes.numel()))
        order = torch.argsort(magnitudes, stable=True)
        global_mask = torch.ones_like(magnitudes, dtype=torch.bool)
        global_mask[order[:n_prune]] = False
        self.threshold_ = float(magnitudes[order[n_prune - 1]]) if n_prune else 0.0
        offset = 0
        for name, p in self.params_.items():
            self.masks_[name] = global_mask[offset : offset + p.numel()].reshape(p.shape)
            offset += p.numel()
        self.current_sparsity_ = n_prune / magnitudes.numel()
        self.apply()

    def apply(self) -> None:
        """Zero the pruned entries again."""
        with torch.no_grad():
            for name, p in self.params_.items():
                p.mul_(self.masks_[name])
