"""Conversion between the long-format table and a list of per-series arrays.

The long table has one row per (series, time step): ``series_id`` (str), ``t`` (int step or
timestamp), one float column per channel, ``label`` (str) and optionally ``split``.
A :class:`SeriesSet` holds the same data as variable-length arrays ``(length_i, n_channels)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KEY_COLUMNS: tuple[str, ...] = ("series_id", "t", "label", "split")


def channel_columns(frame: pd.DataFrame) -> list[str]:
    """Channel columns of a contract-checked table: every column that is not a key column."""
    return [c for c in frame.columns if c not in KEY_COLUMNS]


@dataclass
class SeriesSet:
    """Variable-length multichannel series with their ids, labels and splits.

    Attributes:
        ids: ``(n_series,)`` series ids (str).
        labels: ``(n_series,)`` class labels (str).
        splits: ``(n_series,)`` split names ("train"/"val"/"test", or "" when unknown).
        values: list of ``n_series`` float64 arrays ``(length_i, n_channels)``.
        channels: channel names, the order of the last axis.
        padded: optional ``(n_series, max_length, n_channels)`` block whose rows hold the
            values (``values[i] is a view of padded[i, :length_i]``); lets alignment skip a copy.
    """

    ids: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    values: list[np.ndarray]
    channels: tuple[str, ...]
    padded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def lengths(self) -> np.ndarray:
        """``(n_series,)`` int64 lengths."""
        return np.array([len(v) for v in self.values], dtype=np.int64)

    def subset(self, mask: np.ndarray) -> SeriesSet:
        """The series where boolean ``mask`` (n_series,) is true."""
        idx = np.flatnonzero(mask)
        keep_all = len(idx) == len(self.values)
        return SeriesSet(
            ids=self.ids[idx],
            labels=self.labels[idx],
            splits=self.splits[idx],
            values=[self.values[i] for i in idx],
            channels=self.channels,
            padded=self.padded if keep_all else None,
        )

    def split(self, name: str) -> SeriesSet:
        """The series of one split."""
        return self.subset(self.splits == name)

    def with_values(self, values: list[np.ndarray]) -> SeriesSet:
        """A copy with replaced values (same ids, labels, splits)."""
        return SeriesSet(self.ids, self.labels, self.splits, values, self.channels)


def long_to_series(frame: pd.DataFrame, channels: list[str] | None = None) -> SeriesSet:
    """Group a long table into a :class:`SeriesSet`, rows ordered by ``t`` within each series.

    Args:
        frame: long table; not modified.
        channels: channel columns; default all non-key columns.
    """
    channels = list(channels) if channels is not None else channel_columns(frame)
    ordered = frame.sort_values(["series_id", "t"], kind="stable")
    ids_col = ordered["series_id"].astype(str).to_numpy()
    data = ordered[channels].to_numpy(dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, ids_col[1:] != ids_col[:-1]])
    ends = np.r_[starts[1:], len(ids_col)]
    labels_col = ordered["label"].astype(str).to_numpy()
    if "split" in ordered.columns:
        split_col = ordered["split"].astype(str).to_numpy()
    else:
        split_col = np.full(len(ordered), "", dtype=object)
    return SeriesSet(
        ids=ids_col[starts].astype(str),
        labels=labels_col[starts].astype(str),
        splits=np.asarray(split_col[starts]).astype(str),
        values=[data[s:e] for s, e in zip(starts, ends, strict=True)],
        channels=tuple(channels),
    )


def series_to_long(series: SeriesSet, include_split: bool = True) -> pd.DataFrame:
    """Inverse of :func:`long_to_series`, with integer steps ``t = 0..length-1``."""
    lengths = series.lengths
    total = int(lengths.sum())
    stacked = (
        np.concatenate(series.values, axis=0)
        if len(series)
        else np.empty((0, len(series.channels)))
    )
    out: dict[str, object] = {
        "series_id": np.repeat(series.ids.astype(str), lengths),
        "t": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
        if total
        else np.empty(0, dtype=np.int64),
    }
    for k, ch in enumerate(series.channels):
        out[ch] = stacked[:, k]
    out["label"] = np.repeat(series.labels.astype(str), lengths)
    if include_split:
        out["split"] = np.repeat(series.splits.astype(str), lengths)
    return pd.DataFrame(out)


def to_padded(values: list[np.ndarray], dtype: type | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length series into ``(n, max_len, C)`` (NaN padded) plus ``(n,)`` lengths.

    ``dtype`` defaults to float32 when every series is float32, else float64.
    """
    if dtype is None:
        dtype = np.float32 if values and all(v.dtype == np.float32 for v in values) else np.float64
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    n_ch = values[0].shape[1] if values else 0
    out = np.full(
        (len(values), int(lengths.max()) if len(values) else 0, n_ch), np.nan, dtype=dtype
    )
    for i, v in enumerate(values):
        out[i, : len(v)] = v
    return out, lengths
