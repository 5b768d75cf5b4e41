"""Self-describing, atomic checkpoints (global rank 0 writes) and automatic resume.

Layout under ``<output_dir>/checkpoints/``: ``last.pt`` (every N steps and each epoch end) and
``best.pt`` (the best validation metric so far). Each is a dict of tensors and plain types, readable
with ``torch.load(weights_only=True)`` and by :func:`sensorops.architectures.load_checkpoint_model`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sensorops.architectures import CHECKPOINT_FORMAT_VERSION, read_checkpoint
from sensorops.atomic import atomic_path

logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def fingerprint(data: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able dict (config fingerprint + data shape)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states (torch CPU, CUDA, numpy, python) as weights_only-safe values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + rename). Call on global rank 0 only."""
    path = Path(path)
    state = {"format_version": CHECKPOINT_FORMAT_VERSION, **state}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
    logger.debug("checkpoint written: %s (step %s)", path, state.get("metadata", {}).get("step"))
    return path


def load_resume_state(
    output_dir: str | Path, expected_fingerprint: str, mode: str
) -> dict[str, Any] | None:
    """The ``last.pt`` checkpoint to resume from, or ``None`` to start fresh.

    Args:
        output_dir: run directory.
        expected_fingerprint: :func:`fingerprint` of the current config and data.
        mode: ``auto`` (resume when present and matching; else start fresh with a warning),
            ``never`` or ``must`` (raise unless a matching checkpoint exists).
    """
    if mode == "never":
        return None
    path = checkpoint_dir(output_dir) / LAST
    if not path.is_file():
        if mode == "must":
            raise FileNotFoundError(
                f"training.trainer.checkpoint.resume is 'must' but {path} does not exist; "
                f"run once with resume 'auto' to create it"
            )
        return None
    ckpt = read_checkpoint(path)
    found = ckpt.get("metadata", {}).get("fingerprint")
    if found != expected_fingerprint:
        message = (
            f"checkpoint {path} was made with a different config or model input "
            f"(fingerprint {found} != {expected_fingerprint})"
        )
        if mode == "must":
            raise ValueError(
                message + "; set checkpoint.resume to 'auto' or 'never' to start fresh"
            )
        logger.warning("%s; starting fresh", message)
        return None
    return ckpt
