"""Classifier architectures for multichannel time series, and loading them back from checkpoints.

This module is shared by training (``sensorops.training``) and by compression/export
(``sensorops.modeling``). It holds no distributed code and no Kedro imports.

Every model takes float32 input ``(batch, time, channels)`` (channels last, as in
:class:`sensorops.model_input.ModelInput`) and returns logits ``(batch, n_classes)``. All three
export with ``torch.onnx.export(dynamo=True)`` with a dynamic batch axis and a dynamic time axis.

Checkpoint format (written by :mod:`sensorops.training.checkpoint`, read here): a ``dict`` of
tensors and plain Python types only, so ``torch.load(weights_only=True)`` reads it::

    {"format_version": 1,
     "model_spec": {...},           # ModelSpec as a plain dict
     "model_state": {...},          # state_dict of the bare (un-wrapped) model
     "metadata": {"classes": [...], "channels": [...], "step": int, "epoch": int, ...},
     ... optimizer / scheduler / scaler / RNG state / config (training-only keys)}
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = ("lstm_attention", "resnet1d", "transformer", "gat")
CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_KEYS: tuple[str, ...] = ("model_spec", "model_state", "metadata")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not a sensorops model checkpoint."""


@dataclass
class ModelSpec:
    """Which architecture to build, and at what size.

    Attributes:
        name: architecture, one of :data:`ARCHITECTURES`.
        n_channels: number of input channels (last axis of the input).
        n_classes: number of output classes (width of the logits).
        length: series length the model is trained on (informational: every model accepts any
            length at inference time).
        hidden: hidden width (LSTM units per direction, conv channels, transformer d_model).
        layers: depth (LSTM layers, residual blocks, encoder layers).
        dropout: dropout probability in ``[0, 1)``.
        heads: attention heads of the transformer (must divide ``hidden``); unused otherwise.
    """

    name: str
    n_channels: int
    n_classes: int
    length: int
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    heads: int = 4

    def __post_init__(self) -> None:
        if self.name not in ARCHITECTURES:
            raise ValueError(f"model.name must be one of {list(ARCHITECTURES)}; got {self.name!r}")
        for key, minimum in (
            ("n_channels", 1),
            ("n_classes", 2),
            ("length", 1),
            ("hidden", 1),
            ("layers", 1),
            ("heads", 1),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"model.{key} must be an integer >= {minimum}; got {value!r}")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, int | float)
            or not (0.0 <= float(self.dropout) < 1.0)
        ):
            raise ValueError(f"model.dropout must be a float in [0, 1); got {self.dropout!r}")
        self.dropout = float(self.dropout)
        if self.name == "gat" and self.hidden % self.heads:
            raise ValueError(
                f"model.hidden must be divisible by model.heads for gat; "
                f"got hidden={self.hidden}, heads={self.heads}"
            )
        if self.name == "transformer":
            if self.hidden % self.heads:
                raise ValueError(
                    f"model.hidden must be divisible by model.heads for the transformer; "
                    f"got hidden={self.hidden}, heads={self.heads}"
                )
            if self.hidden % 2:
                raise ValueError(
                    f"model.hidden must be even for the transformer's sinusoidal positions; got {self.hidden}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (stored in checkpoints and MLflow params)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Build from a plain dict; unknown keys are an error that lists the valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"model spec has unknown key(s) {unknown}; valid keys are {valid}")
        return cls(**data)


# --------------------------------------------------------------------------------------------
# building blocks


class AttentionPool(nn.Module):
    """Additive attention pooling over time: ``(batch, time, dim) -> (batch, dim)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(torch.tanh(self.proj(h))), dim=1)  # (B, T, 1)
        return (weights * h).sum(dim=1)


class LSTMAttention(nn.Module):
    """Stacked LSTM followed by additive attention pooling and a linear head."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=spec.n_channels,
            hidden_size=spec.hidden,
            num_layers=spec.layers,
            batch_first=True,
            dropout=spec.dropout if spec.layers > 1 else 0.0,
        )
        self.pool = AttentionPool(spec.hidden)
        self.drop = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.hidden, spec.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(batch, time, channels)`` -> logits ``(batch, n_classes)``."""
        h, _ = self.lstm(x)
        return self.head(self.drop(self.pool(h)))


class _ResidualBlock1d(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(self.drop(out)))
        return torch.relu(out + x)


class ResNet1D(nn.Module):
    """1-D ResNet-style CNN (conv stem + residual blocks) with attention pooling over time."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(spec.n_channels, spec.hidden, kernel_size=7, padding=3, bias=False),
            nn.BatchNorm1d(spec.hidden),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            *[_ResidualBlock1d(spec.hidden, 5, spec.dropout) for _ in range(spec.layers)]
        )
        self.pool = AttentionPool(spec.hidden)
        self.drop = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.hidden, spec.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(batch, time, channels)`` -> logits ``(batch, n_classes)``."""
        h = self.blocks(self.stem(x.transpose(1, 2)))  # (B, hidden, T)
        return self.head(self.drop(self.pool(h.transpose(1, 2))))


class _EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer (explicit, so export never meets a fused fast path)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        attn, _ = self.attn(h, h, h, need_weights=False)
        x = x + self.drop(attn)
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """Linear input projection + sinusoidal positions + transformer encoder + attention pooling."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.dim = spec.hidden
        self.inp = nn.Linear(spec.n_channels, spec.hidden)
        self.layers = nn.ModuleList(
            [_EncoderLayer(spec.hidden, spec.heads, spec.dropout) for _ in range(spec.layers)]
        )
        self.norm = nn.LayerNorm(spec.hidden)
        self.pool = AttentionPool(spec.hidden)
        self.drop = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.hidden, spec.n_classes)
        inv_freq = torch.exp(
            torch.arange(0, spec.hidden, 2, dtype=torch.float32)
            * (-math.log(10000.0) / spec.hidden)
        )
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def _positions(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.arange(x.shape[1], device=x.device, dtype=torch.float32)
        angles = t[:, None] * self.inv_freq[None, :]  # (T, hidden/2)
        pe = torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1).flatten(1)  # (T, hidden)
        return pe.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(batch, time, channels)`` -> logits ``(batch, n_classes)``."""
        h = self.inp(x)
        h = h + self._positions(h)[None]
        for layer in self.layers:
            h = layer(h)
        return self.head(self.drop(self.pool(self.norm(h))))


class _GraphAttention(nn.Module):
    """One multi-head graph-attention layer (GAT, Velickovic et al. 2018) over a dense graph of
    ``n_nodes`` nodes, with a learned additive adjacency bias ``(n_nodes, n_nodes)`` per head.

    ``h`` ``(batch, n_nodes, dim)`` -> ``(batch, n_nodes, dim)`` (pre-norm, residual).
    """

    def __init__(self, dim: int, heads: int, n_nodes: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.att_src = nn.Parameter(torch.zeros(heads, self.head_dim))
        self.att_dst = nn.Parameter(torch.zeros(heads, self.head_dim))
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)
        # learned adjacency (logit bias): starts as the complete graph, training sharpens it
        self.adjacency = nn.Parameter(torch.zeros(heads, n_nodes, n_nodes))
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        z = self.proj(self.norm(h)).reshape(b, n, self.heads, self.head_dim)  # (B, N, H, Dh)
        src = (z * self.att_src).sum(-1)  # (B, N, H): score of node i as the receiver
        dst = (z * self.att_dst).sum(-1)  # (B, N, H): score of node j as the sender
        e = src.transpose(1, 2)[:, :, :, None] + dst.transpose(1, 2)[:, :, None, :]  # (B,H,N,N)
        e = nn.functional.leaky_relu(e, 0.2) + self.adjacency[None]
        alpha = self.drop(torch.softmax(e, dim=-1))
        msg = torch.matmul(alpha, z.transpose(1, 2))  # (B, H, N, Dh)
        msg = msg.transpose(1, 2).reshape(b, n, d)
        return h + self.drop(self.out(nn.functional.elu(msg)))


class ChannelGAT(nn.Module):
    """Graph network over channels: each channel is a node with its own temporal encoding.

    1. Per-node temporal encoder (weights shared by all nodes): two dilated Conv1d + BatchNorm
       + ReLU blocks on each channel alone, then mean and max over time -> ``(B, C, hidden)``,
       plus a learned embedding per node (which sensor it is).
    2. ``layers`` graph-attention layers among the channel nodes (:class:`_GraphAttention`, a
       learned adjacency bias per head, ``heads`` heads).
    3. Mean and max over nodes -> linear head.

    Any length and batch at inference time; the number of channels is fixed by the graph.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h = spec.hidden
        half = max(1, h // 2)
        self.encoder = nn.Sequential(
            nn.Conv1d(1, half, kernel_size=7, padding=3, bias=False),
            nn.BatchNorm1d(half),
            nn.ReLU(),
            nn.Conv1d(half, half, kernel_size=5, padding=4, dilation=2, bias=False),
            nn.BatchNorm1d(half),
            nn.ReLU(),
        )
        self.node_in = nn.Linear(2 * half, h)
        self.node_embedding = nn.Parameter(torch.zeros(spec.n_channels, h))
        nn.init.normal_(self.node_embedding, std=0.02)
        self.layers = nn.ModuleList(
            [
                _GraphAttention(h, spec.heads, spec.n_channels, spec.dropout)
                for _ in range(spec.layers)
            ]
        )
        self.norm = nn.LayerNorm(h)
        self.drop = nn.Dropout(spec.dropout)
        self.head = nn.Linear(2 * h, spec.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(batch, time, channels)`` -> logits ``(batch, n_classes)``."""
        b, t, c = x.shape
        per_node = x.transpose(1, 2).reshape(b * c, 1, t)  # every channel alone
        f = self.encoder(per_node)  # (B*C, half, T)
        f = torch.cat((f.mean(dim=2), f.amax(dim=2)), dim=1).reshape(b, c, -1)
        h = self.node_in(f) + self.node_embedding[None]
        for layer in self.layers:
            h = layer(h)
        h = self.norm(h)
        return self.head(self.drop(torch.cat((h.mean(dim=1), h.amax(dim=1)), dim=1)))


_BUILDERS: dict[str, type[nn.Module]] = {
    "gat": ChannelGAT,
    "lstm_attention": LSTMAttention,
    "resnet1d": ResNet1D,
    "transformer": TransformerClassifier,
}


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming-normal for convolutions, Xavier-uniform for LSTM and linear weights; zero biases.

    Norm layers keep their defaults (weight 1, bias 0). Returns ``model`` (modified in place).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if name.startswith("weight_"):
                    nn.init.xavier_uniform_(param)
                elif name.startswith("bias_"):
                    nn.init.zeros_(param)
                    # forget-gate bias 0.5 in each of bias_ih and bias_hh (sum 1; gate order i, f, g, o)
                    hidden = param.shape[0] // 4
                    with torch.no_grad():
                        param[hidden : 2 * hidden].fill_(0.5)
        elif isinstance(module, nn.MultiheadAttention):
            if module.in_proj_weight is not None:
                nn.init.xavier_uniform_(module.in_proj_weight)
            if module.in_proj_bias is not None:
                nn.init.zeros_(module.in_proj_bias)
    return model


def build_model(spec: ModelSpec) -> nn.Module:
    """Build and initialize the architecture named by ``spec.name``.

    Returns:
        A module mapping float32 ``(batch, time, n_channels)`` to logits ``(batch, n_classes)``.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"build_model expects a ModelSpec; got {type(spec).__name__}")
    model = _BUILDERS[spec.name](spec)
    init_weights(model)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter values (only those with ``requires_grad`` when ``trainable_only``).

    The one count every report uses (training's ``model.params``, compression's params before
    and after); nothing in sensorops freezes parameters, so both readings agree today.
    """
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint dict on CPU with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing (the message says how to produce it), unreadable,
            or lacks the model keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; produce it with `kedro run --pipelines=training` "
            f"(or `python -m sensorops.training.train --config <resolved.json>`)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} could not be read with weights_only=True: {exc}"
        ) from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks key(s) {missing}; expected {list(CHECKPOINT_KEYS)}"
        )
    return ckpt


def load_checkpoint_model(
    path: str | os.PathLike[str],
) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """Rebuild the model stored in a training checkpoint.

    Args:
        path: a ``.pt`` file written by :mod:`sensorops.training` (``best.pt`` / ``last.pt``).

    Returns:
        ``(model, spec, metadata)``: the model in eval mode on CPU, its :class:`ModelSpec`, and
        the checkpoint metadata (``classes``, ``channels``, ``step``, ``epoch``, ``val_metric``...).

    Raises:
        CheckpointError: missing/unreadable file, or weights that do not fit the stored spec.
    """
    ckpt = read_checkpoint(path)
    try:
        spec = ModelSpec.from_dict(dict(ckpt["model_spec"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid model_spec: {exc}") from exc
    model = build_model(spec)
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path}: weights do not match model spec {spec}: {exc}"
        ) from exc
    model.eval()
    metadata = dict(ckpt.get("metadata") or {})
    logger.info("loaded %s model from %s (step %s)", spec.name, path, metadata.get("step"))
    return model, spec, metadata
