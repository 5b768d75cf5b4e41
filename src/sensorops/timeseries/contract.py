"""The raw-data contract of the long-format table, checked with precise errors.

Contract: columns ``series_id``, ``t`` (integer step or timestamp, sortable), ``label`` and one
numeric column per channel (configured, or inferred: every other numeric column), optionally
``split`` in {train, val, test}. No inf, no all-NaN channel (NaN runs are allowed and repaired
later), no duplicate (series_id, t), a label and split constant within a series, at least
``min_classes`` labels and ``min_length`` steps per series.
"""

from __future__ import annotations

import difflib
import logging

import numpy as np
import pandas as pd

from sensorops.timeseries.config import ContractConfig
from sensorops.timeseries.errors import ContractError

logger = logging.getLogger(__name__)

REQUIRED: tuple[str, ...] = ("series_id", "t", "label")
SPLIT_VALUES: tuple[str, ...] = ("train", "val", "test")


def _first_rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series, n: int = 3) -> str:
    rows = frame.loc[np.asarray(mask)].head(n)
    return ", ".join(
        f"row {idx} (series {row.series_id!r}, t={row.t!r})"
        for idx, row in zip(rows.index, rows.itertuples(), strict=True)
    )


def _looks_numeric(col: pd.Series) -> bool:
    nonnull = col.dropna()
    if nonnull.empty:
        return False
    parsed = pd.to_numeric(nonnull.astype(str), errors="coerce")
    return bool(parsed.notna().mean() >= 0.5)


def resolve_channels(frame: pd.DataFrame, config: ContractConfig, where: str) -> list[str]:
    """The channel columns: configured (each must exist) or inferred.

    Raises:
        ContractError: a configured channel is not a column (with a close-match suggestion), or
            no channel column exists.
    """
    keys = {*REQUIRED, "split"}
    candidates = [c for c in frame.columns if c not in keys]
    if config.channels is not None:
        for ch in config.channels:
            if ch not in frame.columns:
                unused = [c for c in candidates if c not in config.channels]
                close = difflib.get_close_matches(ch, unused, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ContractError(
                    f"{where}: channel column {ch!r} (contract.channels) not found; "
                    f"available columns {list(map(str, frame.columns))}{hint}"
                )
        return list(config.channels)
    channels = []
    for c in candidates:
        col = frame[c]
        if pd.api.types.is_bool_dtype(col):
            logger.warning("%s: ignoring boolean column %r (not a channel)", where, c)
        elif pd.api.types.is_numeric_dtype(col) or _looks_numeric(col) or col.isna().all():
            channels.append(c)
        else:
            logger.warning("%s: ignoring non-numeric column %r (not a channel)", where, c)
    if not channels:
        raise ContractError(
            f"{where}: no numeric channel columns; expected at least one float column besides "
            f"{list(REQUIRED)} (found columns {list(map(str, frame.columns))})"
        )
    return channels


def _numeric_channel(frame: pd.DataFrame, ch: str, where: str) -> pd.Series:
    col = frame[ch]
    if pd.api.types.is_bool_dtype(col):
        raise ContractError(f"{where}: channel column {ch!r} is boolean; expected float values")
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(np.float64)
    parsed = pd.to_numeric(col, errors="coerce")
    bad = parsed.isna() & col.notna()
    if bad.any():
        first = frame.loc[bad].iloc[0]
        raise ContractError(
            f"{where}: channel column {ch!r} must be numeric but has {int(bad.sum())} text value(s), "
            f"e.g. {first[ch]!r} at {_first_rows(frame, bad, 1)}"
        )
    return parsed.astype(np.float64)


def _time_column(frame: pd.DataFrame, where: str) -> np.ndarray:
    t = frame["t"]
    if t.isna().any():
        raise ContractError(
            f"{where}: column 't' has missing values at {_first_rows(frame, t.isna())}"
        )
    if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_datetime64_any_dtype(t)):
        try:
            t = pd.to_datetime(t)
        except (ValueError, TypeError) as exc:
            raise ContractError(
                f"{where}: column 't' must be integer steps or timestamps; cannot sort values like "
                f"{frame['t'].iloc[0]!r}: {exc}"
            ) from exc
    return t.to_numpy()


def _channel_column(frame: pd.DataFrame, ch: str, where: str) -> np.ndarray:
    arr = _numeric_channel(frame, ch, where).to_numpy()
    if np.isinf(arr).any():
        bad = np.isinf(arr)
        raise ContractError(
            f"{where}: channel {ch!r} has {int(bad.sum())} infinite value(s) at "
            f"{_first_rows(frame, bad)}; expected finite floats (NaN marks a dropout)"
        )
    if np.isnan(arr).all():
        raise ContractError(f"{where}: channel {ch!r} is entirely NaN; expected measured values")
    return arr


def _columns(frame: pd.DataFrame, channels: list[str], where: str) -> pd.DataFrame:
    """The typed columns, each checked on its own (keys, time, channels, label, split)."""
    out = pd.DataFrame({"series_id": frame["series_id"]})
    if out["series_id"].isna().any():
        raise ContractError(
            f"{where}: column 'series_id' has missing values at {_first_rows(frame, frame['series_id'].isna())}"
        )
    out["series_id"] = out["series_id"].astype(str)
    out["t"] = _time_column(frame, where)
    for ch in channels:
        out[ch] = _channel_column(frame, ch, where)
    labels = frame["label"]
    if labels.isna().any():
        raise ContractError(
            f"{where}: column 'label' has missing values at {_first_rows(frame, labels.isna())}"
        )
    out["label"] = labels.astype(str).to_numpy()
    if "split" in frame.columns:
        split = frame["split"].astype(str)
        bad = ~split.isin(SPLIT_VALUES)
        if bad.any():
            raise ContractError(
                f"{where}: column 'split' must be one of {list(SPLIT_VALUES)}; got "
                f"{sorted(split[bad].unique().tolist())[:5]} at {_first_rows(frame, bad)}"
            )
        out["split"] = split.to_numpy()
    return out


def _check_keys(out: pd.DataFrame, where: str) -> None:
    dup = out.duplicated(["series_id", "t"], keep=False)
    if dup.any():
        pairs = out.loc[dup, ["series_id", "t"]].drop_duplicates().head(3)
        shown = ", ".join(f"({s!r}, {v!r})" for s, v in pairs.itertuples(index=False))
        raise ContractError(
            f"{where}: {int(dup.sum())} rows have a duplicate (series_id, t), e.g. {shown}; "
            "expected one row per series and time step"
        )


def _check_series(
    out: pd.DataFrame, channels: list[str], config: ContractConfig, where: str
) -> tuple[int, list[str]]:
    """Per-series rules on the sorted table; returns ``(n_series, classes)``."""
    grouped = out.groupby("series_id", sort=False)
    for col in ("label", "split"):
        if col in out.columns:
            nun = grouped[col].nunique()
            if (nun > 1).any():
                sid = nun.index[nun > 1][0]
                raise ContractError(
                    f"{where}: series {sid!r} has several values in column {col!r} "
                    f"({sorted(out.loc[out.series_id == sid, col].unique().tolist())}); expected one per series"
                )
    sizes = grouped.size()
    short = sizes[sizes < config.min_length]
    if len(short):
        shown = ", ".join(
            f"{sid!r} ({n} step{'s' if n != 1 else ''})" for sid, n in short.head(3).items()
        )
        raise ContractError(
            f"{where}: {len(short)} series shorter than contract.min_length={config.min_length}: {shown}"
        )
    all_nan = grouped[channels].count() == 0
    if all_nan.to_numpy().any():
        rows, cols = np.nonzero(all_nan.to_numpy())
        sid, ch = all_nan.index[rows[0]], channels[cols[0]]
        raise ContractError(
            f"{where}: series {sid!r} has channel {ch!r} entirely NaN; expected at least one value "
            "per channel and series"
        )
    classes = sorted(out.groupby("series_id")["label"].first().unique().tolist())
    if len(classes) < config.min_classes:
        raise ContractError(
            f"{where}: column 'label' has {len(classes)} class(es) {classes}; expected at least "
            f"{config.min_classes} classes"
        )
    return len(sizes), classes


def check_contract(
    frame: pd.DataFrame, config: ContractConfig, source: str = "input"
) -> pd.DataFrame:
    """Check ``frame`` against the contract and return a clean, sorted copy.

    Args:
        frame: raw long table; not modified.
        config: the contract settings.
        source: name of the source (file path...) used in every error message.

    Returns:
        A new frame with columns ``series_id`` (str), ``t``, the channels (float64), ``label``
        (str) and ``split`` (str, if present), sorted by (series_id, t), index reset.

    Raises:
        ContractError: the first violation found, naming the source, column/series and expectation.
    """
    where = f"{source}"
    if frame is None or len(frame) == 0:
        raise ContractError(f"{where}: the table is empty; expected one row per (series_id, t)")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{where}: missing required column(s) {missing}; expected columns "
            f"['series_id', 't', <channels...>, 'label'] (found {list(map(str, frame.columns))})"
        )
    channels = resolve_channels(frame, config, where)
    out = _columns(frame, channels, where)
    _check_keys(out, where)
    out = out.sort_values(["series_id", "t"], kind="stable").reset_index(drop=True)
    n_series, classes = _check_series(out, channels, config, where)
    logger.info(
        "%s: contract ok (%d series, %d channels %s, %d classes)",
        where,
        n_series,
        len(channels),
        channels,
        len(classes),
    )
    return out
