"""Precision modes: fp32, tf32, bf16 (autocast, no scaler), fp16 (autocast + dynamic loss scaling)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecisionPolicy:
    """What a precision mode means on a device."""

    mode: str
    """Resolved mode: fp32, tf32, bf16 or fp16 (never auto)."""
    device_type: str
    autocast_dtype: torch.dtype | None
    """dtype for ``torch.autocast``, or None for no autocast."""
    use_scaler: bool
    """True for fp16: the loss is scaled and inf/nan steps are skipped."""

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Context for the forward pass and loss."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.autocast_dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler; disabled (a pass-through) unless the mode is fp16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.use_scaler)


def resolve_precision(
    requested: str,
    device: torch.device,
    bf16_supported: Callable[[], bool] | None = None,
) -> PrecisionPolicy:
    """Turn a requested mode into a policy for ``device``.

    ``auto``: bf16 on CUDA devices that support it, else fp32 (and fp32 on CPU). ``tf32`` enables
    TF32 matmuls/convolutions on CUDA; on CPU it means fp32 (with a warning).
    """
    device_type = device.type
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported if device_type == "cuda" else (lambda: True)
    mode = requested
    if mode == "auto":
        mode = "bf16" if device_type == "cuda" and bf16_supported() else "fp32"
    if mode == "bf16" and device_type == "cuda" and not bf16_supported():
        raise ValueError(
            "training.trainer.precision 'bf16' is not supported by this GPU; use 'fp16' or 'fp32'"
        )
    if mode == "tf32":
        if device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.set_float32_matmul_precision("high")
        else:
            logger.warning("precision 'tf32' has no effect on %s; training in fp32", device_type)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    return PrecisionPolicy(
        mode=mode, device_type=device_type, autocast_dtype=dtype, use_scaler=mode == "fp16"
    )
