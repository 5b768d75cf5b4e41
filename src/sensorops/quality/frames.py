"""Frames the suites validate: the long table itself and statistics computed from it.

Rules that Great Expectations has no expectation for (correlation bounds, per-series ordering,
sampling interval, class shares, split disjointness) are checked by validating these computed
frames with standard expectations, so every rule's outcome is a GE result and shows in Data Docs.

Every statistics frame has a string ``key`` column (the series id, ``split/label``, channel or
class) so that a failing row is named in the gate's error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sensorops.model_input import SPLITS, ModelInput

logger = logging.getLogger(__name__)

SERIES_ID = "series_id"
TIME = "t"
LABEL = "label"
SPLIT = "split"
KEY_COLUMNS: tuple[str, ...] = (SERIES_ID, TIME, LABEL, SPLIT)
ALL_SPLITS = "all"


class DataQualityInputError(ValueError):
    """The data handed to the gate cannot be validated at all (not a table, no key columns...)."""


def infer_channels(frame: pd.DataFrame, channels: Sequence[str] | None = None) -> tuple[str, ...]:
    """The channel columns of a long table.

    Args:
        frame: long table with the key columns and one column per channel.
        channels: configured channel names; ``None`` infers every numeric (or boolean) column
            except the keys.

    Raises:
        DataQualityInputError: a configured channel is missing, or no channel column exists.
    """
    if channels is not None:
        missing = [c for c in channels if c not in frame.columns]
        if missing:
            raise DataQualityInputError(
                f"configured channels {missing} are not columns of the table; columns are {list(frame.columns)}"
            )
        return tuple(channels)
    found = tuple(
        str(c)
        for c in frame.columns
        if c not in KEY_COLUMNS
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    )
    if not found:
        raise DataQualityInputError(
            f"no numeric channel columns besides the keys {list(KEY_COLUMNS)}; columns are {list(frame.columns)}"
        )
    return found


def check_long_table(frame: object) -> pd.DataFrame:
    """Check that ``frame`` is a long table with the key columns (values are checked by the suites).

    Raises:
        DataQualityInputError: not a DataFrame, or lacking ``series_id``, ``t`` or ``label``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataQualityInputError(
            f"expected the long sensor table as a pandas DataFrame; got {type(frame).__name__}"
        )
    missing = [c for c in (SERIES_ID, TIME, LABEL) if c not in frame.columns]
    if missing:
        raise DataQualityInputError(
            f"the long sensor table lacks key column(s) {missing}; columns are {list(frame.columns)}"
        )
    return frame


def model_input_to_long(mi: ModelInput) -> pd.DataFrame:
    """Flatten a :class:`ModelInput` into the long-table layout the suites validate.

    Returns:
        DataFrame with ``n_series * length`` rows per split: ``series_id``, ``t`` (0..length-1),
        one float32 column per channel, ``label`` (class name) and ``split``.
    """
    parts = []
    for split in SPLITS:
        x = mi.X[split]
        n_series, length = x.shape[0], x.shape[1] if x.ndim == 3 else 0
        if n_series == 0:
            continue
        flat = x.reshape(n_series * length, x.shape[2])
        part = pd.DataFrame(flat, columns=list(mi.channels))
        part.insert(0, TIME, np.tile(np.arange(length, dtype=np.int64), n_series))
        part.insert(0, SERIES_ID, np.repeat(np.asarray(mi.series_ids[split]).astype(str), length))
        labels = np.asarray(mi.classes, dtype=object)[np.asarray(mi.y[split], dtype=np.int64)]
        part[LABEL] = np.repeat(labels, length)
        part[SPLIT] = split
        parts.append(part)
    if not parts:
        raise DataQualityInputError("the model input holds no series in any split")
    return pd.concat(parts, ignore_index=True)


def correlation_frame(frame: pd.DataFrame, channels: Sequence[str]) -> pd.DataFrame:
    """Pearson correlation matrix of the channels (pairwise-complete observations).

    Returns:
        ``(n_channels, n_channels + 1)`` frame: ``key`` (channel) and one column per channel.
        Entries of a constant channel are NaN.
    """
    values = frame[list(channels)].astype("float64")
    corr = values.corr()
    corr.insert(0, "key", [str(c) for c in channels])
    return corr.reset_index(drop=True)


def abs_correlation_frame(corr: pd.DataFrame) -> pd.DataFrame:
    """|r| with the diagonal (a channel with itself) and undefined entries set to 0, for validation."""
    channels = [c for c in corr.columns if c != "key"]
    values = corr[channels].to_numpy(dtype="float64", copy=True)
    values = np.abs(np.nan_to_num(values, nan=0.0))
    np.fill_diagonal(values, 0.0)
    out = pd.DataFrame(values, columns=channels)
    out.insert(0, "key", corr["key"].to_numpy())
    return out


def series_stats_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per series: ordering, length, sampling interval, split and label counts.

    Columns:
        ``key`` (series id), ``n_steps``, ``t_strictly_increasing`` (in stored row order),
        ``interval_deviation`` (max |dt - median dt| / median dt over the series' intervals after
        sorting by ``t``; series may differ in sampling rate; 0 for a series of one step), ``n_splits``
        (distinct ``split`` values; 1 without a split column), ``n_labels`` (distinct labels).
        Rows with a missing ``series_id`` are left out (the key rule reports them).
    """
    ids = frame[SERIES_ID]
    keep = ids.notna().to_numpy()
    codes, uniques = pd.factorize(ids[keep].astype(str), sort=False)
    n = len(uniques)
    out = pd.DataFrame({"key": np.asarray(uniques, dtype=object)})
    out["n_steps"] = np.bincount(codes, minlength=n).astype(np.int64)

    t_raw = frame[TIME][keep]
    t_valid = t_raw.notna().to_numpy().copy()
    if pd.api.types.is_datetime64_any_dtype(t_raw):
        # nanoseconds; NaT becomes int64 min here but is masked out by t_valid
        t_num = t_raw.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
    else:
        t_num = pd.to_numeric(t_raw, errors="coerce").to_numpy(dtype="float64")
        t_valid &= ~np.isnan(t_num)
    c_t, t_v = codes[t_valid], t_num[t_valid]

    # Stored order: a stable sort by series keeps each series' rows in file order.
    order = np.argsort(c_t, kind="stable")
    c_o, t_o = c_t[order], t_v[order]
    same = c_o[1:] == c_o[:-1]
    not_increasing = same & ~(np.diff(t_o) > 0)
    bad = np.bincount(c_o[1:][not_increasing], minlength=n)
    out["t_strictly_increasing"] = bad == 0

    # Sampling interval: sort by (series, t) so a shuffled but regular series still passes here.
    order = np.lexsort((t_v, c_t))
    c_s, t_s = c_t[order], t_v[order]
    same = c_s[1:] == c_s[:-1]
    dt = np.diff(t_s)[same]
    owner = c_s[1:][same]
    deviation = np.zeros(n, dtype="float64")
    if dt.size:
        intervals = pd.Series(dt)
        median = intervals.groupby(owner).transform("median").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(median > 0, np.abs(dt - median) / median, np.inf)
        worst = pd.Series(rel).groupby(owner).max()
        deviation[worst.index.to_numpy()] = worst.to_numpy()
    out["interval_deviation"] = deviation

    out["n_splits"] = _distinct_per_series(
        codes, frame[SPLIT][keep] if SPLIT in frame.columns else None, n
    )
    out["n_labels"] = _distinct_per_series(codes, frame[LABEL][keep], n)
    return out


def _distinct_per_series(codes: np.ndarray, values: pd.Series | None, n: int) -> np.ndarray:
    if values is None:
        return np.ones(n, dtype=np.int64)
    v_codes, _ = pd.factorize(values, use_na_sentinel=True)
    ok = v_codes >= 0
    pairs = np.unique(codes[ok].astype(np.int64) * (int(v_codes.max(initial=0)) + 1) + v_codes[ok])
    series = pairs // (int(v_codes.max(initial=0)) + 1)
    return np.bincount(series, minlength=n).astype(np.int64)


def series_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per series: ``series_id``, ``label`` and ``split`` (first non-null value of each).

    Series without a ``split`` column all get the split ``"all"``.
    """
    cols = [LABEL] + ([SPLIT] if SPLIT in frame.columns else [])
    per = (
        frame.loc[frame[SERIES_ID].notna(), [SERIES_ID, *cols]]
        .groupby(SERIES_ID, sort=False, observed=True)
        .first()
    )
    per = per.reset_index()
    if SPLIT not in per.columns:
        per[SPLIT] = ALL_SPLITS
    per[SERIES_ID] = per[SERIES_ID].astype(str)
    return per


def class_stats_frame(per_series: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Series count and share of every expected label in every split present.

    Args:
        per_series: output of :func:`series_labels`.
        labels: the expected label set; a label absent from a split gets a row with count 0.

    Returns:
        Frame with ``key`` (``split/label``), ``split``, ``label``, ``count``, ``share`` (of the
        split's labelled series).
    """
    known = per_series.dropna(subset=[LABEL])
    splits = [s for s in pd.unique(per_series[SPLIT].dropna().astype(str))]
    rows = []
    for split in splits:
        in_split = known[known[SPLIT].astype(str) == split]
        counts = in_split[LABEL].astype(str).value_counts()
        total = int(len(in_split))
        for label in labels:
            count = int(counts.get(label, 0))
            rows.append(
                {
                    "key": f"{split}/{label}",
                    "split": split,
                    "label": label,
                    "count": count,
                    "share": count / total if total else 0.0,
                }
            )
    return pd.DataFrame(rows, columns=["key", "split", "label", "count", "share"])


def series_features(
    frame: pd.DataFrame, channels: Sequence[str], series: Sequence[str]
) -> np.ndarray:
    """Per-channel summary features of the given series: mean, std, 5% and 95% quantiles.

    Quantiles rather than min/max keep isolated spikes (the raw stage is before outlier removal)
    from dominating. NaN values are ignored.

    Returns:
        float64 array ``(len(series), 4 * n_channels)`` in the order of ``series``; a statistic
        that is undefined (all values missing) is NaN.
    """
    wanted = pd.Index([str(s) for s in series])
    sub = frame.loc[frame[SERIES_ID].astype(str).isin(wanted), [SERIES_ID, *channels]]
    sub = sub.assign(**{SERIES_ID: sub[SERIES_ID].astype(str)})
    grouped = sub.groupby(SERIES_ID, sort=False)[list(channels)]
    stats = [grouped.mean(), grouped.std(ddof=0), grouped.quantile(0.05), grouped.quantile(0.95)]
    feats = pd.concat(stats, axis=1).reindex(wanted)
    return feats.to_numpy(dtype="float64")
