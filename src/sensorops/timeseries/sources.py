"""Raw sources, each turned into the long-format table.

- a long table in parquet or CSV (:func:`read_long_table`),
- UEA/UCR ``.ts`` files through aeon's loader (:func:`read_ts_file`),
- the BasicMotions dataset bundled inside aeon, read from its package data, never downloaded
  (:func:`load_basic_motions`),
- the synthetic industrial generator (:mod:`sensorops.timeseries.synthetic`).

:func:`load_source` dispatches on :class:`~sensorops.timeseries.config.SourceConfig`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sensorops.timeseries.config import SourceConfig
from sensorops.timeseries.errors import SourceError

logger = logging.getLogger(__name__)

BASIC_MOTIONS_CHANNELS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


def _object_columns_to_str(frame: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type object columns become strings so the table can be written as parquet."""
    obj = [c for c in frame.columns if frame[c].dtype == object]
    if not obj:
        return frame
    frame = frame.copy()
    for c in obj:
        col = frame[c]
        frame[c] = col.where(col.isna(), col.astype(str))
    return frame


def read_long_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a long-format table from ``.parquet``/``.pq`` or ``.csv``.

    Raises:
        SourceError: missing, empty, corrupt or unsupported file; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"source file {path} does not exist; expected a .parquet or .csv table")
    if path.stat().st_size == 0:
        raise SourceError(
            f"source file {path} is empty (0 bytes); expected a long table with columns "
            "series_id, t, <channels...>, label"
        )
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise SourceError(
                f"source file {path} has unsupported suffix {suffix!r}; expected .parquet, .pq or .csv"
            )
    except SourceError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"source file {path} is empty (no header row): {exc}") from exc
    except Exception as exc:  # pyarrow.ArrowInvalid, OSError, ParserError...
        raise SourceError(
            f"source file {path} could not be read as {suffix.lstrip('.')} "
            f"(corrupt or not a {suffix.lstrip('.')} file): {type(exc).__name__}: {exc}"
        ) from exc
    if frame.empty:
        raise SourceError(f"source file {path} has no rows; expected one row per (series_id, t)")
    return _object_columns_to_str(frame)


def arrays_to_long(
    values: Sequence[np.ndarray],
    labels: Sequence[str],
    split: str | Sequence[str] | None,
    channels: Sequence[str],
    id_prefix: str,
) -> pd.DataFrame:
    """Turn per-series arrays ``(length_i, n_channels)`` into the long table.

    Args:
        values: series, each ``(length_i, n_channels)``.
        labels: ``(n_series,)`` labels.
        split: one split name for all, one per series, or None for no split column.
        channels: names of the ``n_channels`` channels.
        id_prefix: series ids are ``f"{id_prefix}{i:05d}"``.
    """
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    stacked = np.concatenate([np.asarray(v, dtype=np.float64) for v in values], axis=0)
    data: dict[str, object] = {
        "series_id": np.repeat([f"{id_prefix}{i:05d}" for i in range(len(values))], lengths),
        "t": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths]),
    }
    for k, ch in enumerate(channels):
        data[ch] = stacked[:, k]
    data["label"] = np.repeat(np.asarray(labels).astype(str), lengths)
    if split is not None:
        per_series = [split] * len(values) if isinstance(split, str) else list(split)
        data["split"] = np.repeat(np.asarray(per_series, dtype=str), lengths)
    return pd.DataFrame(data)


def read_ts_file(
    path: str | os.PathLike[str],
    split: str | None = None,
    channels: Sequence[str] | None = None,
    id_prefix: str | None = None,
) -> pd.DataFrame:
    """Read a UEA/UCR ``.ts`` file with aeon's loader and convert it to the long table.

    Args:
        path: the ``.ts`` file.
        split: split name written for every series (None: no split column).
        channels: channel names (default ``dim_0..dim_{C-1}``).
        id_prefix: prefix of generated series ids (default: file stem + "_").

    Raises:
        SourceError: the file is missing, empty or not a valid ``.ts`` file.
    """
    from aeon.datasets import load_from_ts_file

    path = Path(path)
    if not path.exists():
        raise SourceError(f"source file {path} does not exist; expected a UEA/UCR .ts file")
    if path.stat().st_size == 0:
        raise SourceError(f"source file {path} is empty (0 bytes); expected a UEA/UCR .ts file")
    try:
        X, y = load_from_ts_file(str(path), return_type="auto")
    except Exception as exc:
        raise SourceError(
            f"source file {path} is not a valid UEA/UCR .ts file: {type(exc).__name__}: {exc}"
        ) from exc
    # aeon returns (n, C, L) for equal lengths or a list of (C, L_i) arrays.
    series = [np.asarray(x, dtype=np.float64).T for x in X]
    if not series or series[0].ndim != 2:
        raise SourceError(
            f"source file {path} is not a valid UEA/UCR .ts file: it holds no series after @data"
        )
    n_ch = series[0].shape[1]
    names = list(channels) if channels is not None else [f"dim_{k}" for k in range(n_ch)]
    if len(names) != n_ch:
        raise SourceError(
            f"source file {path} has {n_ch} channels but {len(names)} channel names were given: {names}"
        )
    prefix = id_prefix if id_prefix is not None else f"{path.stem}_"
    return arrays_to_long(series, [str(v) for v in y], split, names, prefix)


def basic_motions_dir() -> Path:
    """Directory of the BasicMotions ``.ts`` files bundled in the aeon package."""
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data" / "BasicMotions"


def load_basic_motions(channels: Sequence[str] | None = None) -> pd.DataFrame:
    """The real BasicMotions dataset (80 series, 6 channels, length 100, 4 classes) as a long table.

    Reads the ``.ts`` files that ship inside aeon (no network). The original train/test split
    is kept in the ``split`` column ("train"/"test"); validation is carved from train later.
    """
    folder = basic_motions_dir()
    names = list(channels) if channels is not None else list(BASIC_MOTIONS_CHANNELS)
    parts = []
    for split in ("train", "test"):
        path = folder / f"BasicMotions_{split.upper()}.ts"
        if not path.exists():
            raise SourceError(
                f"aeon's bundled BasicMotions file {path} is missing; reinstall aeon (it is not downloaded)"
            )
        parts.append(read_ts_file(path, split=split, channels=names, id_prefix=f"bm_{split}_"))
    return pd.concat(parts, ignore_index=True)


def load_source(config: SourceConfig) -> pd.DataFrame:
    """Materialise the configured source as a long-format table (not yet contract-checked)."""
    if config.kind == "basicmotions":
        frame = load_basic_motions(config.channels)
    elif config.kind == "long_table":
        frame = read_long_table(str(config.path))
    elif config.kind == "ts":
        has_test = config.test_path is not None
        frame = read_ts_file(
            str(config.path),
            split="train" if has_test else None,
            channels=config.channels,
            id_prefix="train_" if has_test else None,
        )
        if has_test:
            test = read_ts_file(
                str(config.test_path), split="test", channels=config.channels, id_prefix="test_"
            )
            frame = pd.concat([frame, test], ignore_index=True)
    else:
        from sensorops.timeseries.synthetic import generate_industrial

        frame = generate_industrial(config.synthetic).frame
    logger.info(
        "loaded %s: %d rows, %d series",
        config.describe(),
        len(frame),
        frame["series_id"].nunique() if "series_id" in frame.columns else -1,
    )
    return frame
