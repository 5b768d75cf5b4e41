"""The model-input contract between ingestion and everything downstream.

Ingestion produces one :class:`ModelInput`; data quality, training, compression, export and
promotion consume it. It is stored as a single ``.npz`` file (numpy only, no pickle) so that
torchrun workers, ONNX calibration and notebooks read it without Kedro.

Arrays use the layout ``(n_series, length, n_channels)`` (channels last), float32, already
outlier-filtered, DTW-aligned to a common length and normalized with training statistics.
Labels are integer codes into :attr:`ModelInput.classes`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorops.atomic import atomic_path

SPLITS: tuple[str, ...] = ("train", "val", "test")


class ModelInputError(ValueError):
    """The model input is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class ModelInput:
    """Aligned, normalized arrays for every split, plus what is needed to interpret them.

    Attributes:
        X: split name -> float32 array ``(n_series, length, n_channels)``.
        y: split name -> int64 array ``(n_series,)`` of codes into ``classes``.
        series_ids: split name -> array ``(n_series,)`` of the original ``series_id`` strings.
        classes: class names; code ``k`` means ``classes[k]``.
        channels: channel names, in the order of the last axis of ``X``.
        metadata: JSON-serialisable facts about how the arrays were made (reference kind,
            DTW constraint, normalization stats, source, counts...).
    """

    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    series_ids: dict[str, np.ndarray]
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [
            s for s in SPLITS if s not in self.X or s not in self.y or s not in self.series_ids
        ]
        if missing:
            raise ModelInputError(f"model input lacks split(s) {missing}; expected {list(SPLITS)}")
        lengths = set()
        for split in SPLITS:
            x, y, ids = self.X[split], self.y[split], self.series_ids[split]
            if x.ndim != 3:
                raise ModelInputError(
                    f"X[{split!r}] must be 3-D (n_series, length, n_channels); got shape {x.shape}"
                )
            if x.shape[2] != len(self.channels):
                raise ModelInputError(
                    f"X[{split!r}] has {x.shape[2]} channels but {len(self.channels)} channel names"
                )
            if not (len(x) == len(y) == len(ids)):
                raise ModelInputError(
                    f"split {split!r}: X has {len(x)} series, y {len(y)}, series_ids {len(ids)}"
                )
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise ModelInputError(
                    f"y[{split!r}] has codes outside [0, {len(self.classes)}) for classes {self.classes}"
                )
            if len(x):
                lengths.add(x.shape[1])
        if len(lengths) > 1:
            raise ModelInputError(
                f"splits have different lengths {sorted(lengths)}; alignment must make them equal"
            )

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def length(self) -> int:
        return int(self.X["train"].shape[1])

    def counts(self) -> dict[str, int]:
        """Number of series per split."""
        return {s: int(len(self.y[s])) for s in SPLITS}


def split_digest(mi: ModelInput, split: str) -> str:
    """SHA-256 (hex, first 16 chars) over the split's X, y and series ids, with shapes and dtypes.

    Args:
        mi: model input; ``X[split]`` is ``(n_series, length, n_channels)`` float32.
        split: one of ``train``, ``val``, ``test``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
    h = hashlib.sha256()
    for arr in (
        np.ascontiguousarray(mi.X[split], dtype=np.float32),
        np.ascontiguousarray(mi.y[split], dtype=np.int64),
    ):
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    h.update("\x1f".join(str(s) for s in mi.series_ids[split]).encode())
    h.update("\x1f".join((*mi.classes, "|", *mi.channels)).encode())
    return h.hexdigest()[:16]


def model_input_digests(mi: ModelInput) -> dict[str, str]:
    """``{"train": digest, "val": digest, "test": digest}`` (see :func:`split_digest`)."""
    return {split: split_digest(mi, split) for split in SPLITS}


def save_model_input(mi: ModelInput, path: str | os.PathLike[str]) -> None:
    """Write ``mi`` to ``path`` (``.npz``) atomically; no pickle inside."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        arrays[f"X_{split}"] = np.ascontiguousarray(mi.X[split], dtype=np.float32)
        arrays[f"y_{split}"] = np.asarray(mi.y[split], dtype=np.int64)
        arrays[f"ids_{split}"] = np.asarray(mi.series_ids[split]).astype(str)
    arrays["classes"] = np.asarray(mi.classes, dtype=str)
    arrays["channels"] = np.asarray(mi.channels, dtype=str)
    arrays["metadata_json"] = np.asarray(json.dumps(mi.metadata, sort_keys=True, default=str))
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_model_input(path: str | os.PathLike[str]) -> ModelInput:
    """Read a :class:`ModelInput` written by :func:`save_model_input`.

    Raises:
        ModelInputError: the file is missing, not an npz, or lacks an array; the message names
            the file and what to run to produce it.
    """
    path = Path(path)
    if not path.exists():
        raise ModelInputError(
            f"model input {path} does not exist; produce it with `kedro run --pipelines=ingestion`"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            need = {f"{k}_{s}" for k in ("X", "y", "ids") for s in SPLITS} | {
                "classes",
                "channels",
                "metadata_json",
            }
            lacking = sorted(need - files)
            if lacking:
                raise ModelInputError(
                    f"model input {path} lacks arrays {lacking}; re-run ingestion"
                )
            return ModelInput(
                X={s: data[f"X_{s}"] for s in SPLITS},
                y={s: data[f"y_{s}"] for s in SPLITS},
                series_ids={s: data[f"ids_{s}"] for s in SPLITS},
                classes=tuple(str(c) for c in data["classes"]),
                channels=tuple(str(c) for c in data["channels"]),
                metadata=json.loads(str(data["metadata_json"])),
            )
    except ModelInputError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError...
        raise ModelInputError(f"model input {path} is corrupt or not an .npz file: {exc}") from exc
