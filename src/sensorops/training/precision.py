"""Precision modes: fp32, tf32, bf16 (autocast, no scaler), fp16 (autocast + dynamic loss scaling);
``auto`` resolves per device (bf16 on GPUs that support it, else fp16; fp32 on CPU)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sensorops.training.config import ConfigError

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


def cuda_bf16_supported() -> bool:
    """True when the current CUDA device computes in bf16 natively (Ampere or newer).

    Emulated bf16 (what ``torch.cuda.is_bf16_supported()`` also accepts by default on older GPUs)
    does not count: autocast in bf16 there is slow or fails inside the workers.
    """
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch without the argument
        return bool(torch.cuda.is_bf16_supported())


def resolve_precision_mode(
    requested: str,
    device_type: str,
    bf16_supported: Callable[[], bool] | None = None,
) -> str:
    """The concrete mode (fp32, tf32, bf16 or fp16) for ``requested`` on ``device_type``.

    ``auto``: bf16 on CUDA when the GPU supports it, else fp16 (autocast + dynamic loss scaling);
    fp32 on CPU. Called by the launcher before any worker starts, so an impossible request fails
    there and the workers receive the resolved mode.

    Args:
        requested: ``training.trainer.precision``: auto, fp32, tf32, bf16 or fp16.
        device_type: ``"cuda"`` or ``"cpu"``.
        bf16_supported: probe for native bf16 on the GPU (default :func:`cuda_bf16_supported`);
            only called on CUDA.

    Raises:
        ConfigError: ``bf16`` requested on a GPU without native bf16 support.
    """
    if device_type != "cuda":
        return "fp32" if requested == "auto" else requested
    if requested not in ("auto", "bf16"):
        return requested
    probe = bf16_supported or cuda_bf16_supported
    supported = probe()
    if requested == "auto":
        mode = "bf16" if supported else "fp16"
        logger.info(
            "precision auto -> %s (%s)",
            mode,
            "GPU supports bf16" if supported else "GPU lacks bf16; fp16 with dynamic loss scaling",
        )
        return mode
    if not supported:
        name = torch.cuda.get_device_name() if bf16_supported is None else "this GPU"
        raise ConfigError(
            f"training.trainer.precision 'bf16' is not supported by {name} (bf16 needs an "
            "Ampere or newer GPU); use 'auto' (picks fp16 with loss scaling here), 'fp16' or 'fp32'"
        )
    return "bf16"


def resolve_precision(
    requested: str,
    device: torch.device,
    bf16_supported: Callable[[], bool] | None = None,
) -> PrecisionPolicy:
    """Turn a requested mode into a policy for ``device`` (see :func:`resolve_precision_mode`).

    ``tf32`` enables TF32 matmuls/convolutions on CUDA; on CPU it means fp32 (with a warning).
    """
    device_type = device.type
    mode = resolve_precision_mode(requested, device_type, bf16_supported)
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
