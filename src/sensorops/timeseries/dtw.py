"""Multivariate (dependent) DTW onto a reference, with a parallel numba kernel.

The kernel reproduces ``tslearn.metrics.dtw_path`` exactly (same warping paths, bit-identical
distances): float64 accumulation of squared Euclidean cell costs, ``min(up, left, diag)``
recursion, and tslearn's backtrack rule (``tslearn/metrics/utils.py::_compute_path_generic``):
at row 0 go left, at column 0 go up, otherwise ``argmin([diag, up, left])`` with the first
minimum winning. The global constraint is tslearn's mask (Sakoe-Chiba or Itakura, the same code
re-implemented in numpy to skip tslearn's JIT), given to the kernel as per-row column bounds, so
only in-band cells are computed.

Series are processed in parallel (``numba.prange`` over chunks, one cost buffer per chunk).
JIT compilation happens once per process (``cache=True`` also keeps it across processes).
"""

from __future__ import annotations

import functools
import logging

import numba
import numpy as np
from numba import njit, prange

from sensorops.timeseries.band import Band, BandSource, as_band

logger = logging.getLogger(__name__)


def sakoe_chiba_mask(sz1: int, sz2: int, radius: int) -> np.ndarray:
    """tslearn's Sakoe-Chiba mask ``(sz1, sz2)`` (same code as ``tslearn.metrics.sakoe_chiba_mask``).

    Re-implemented in numpy because tslearn's numba version costs seconds of JIT per process.
    """
    mask = np.zeros((sz1, sz2), dtype=bool)
    if sz1 > sz2:
        width = sz1 - sz2 + radius
        for i in range(sz2):
            mask[max(0, i - radius) : min(sz1, i + width) + 1, i] = True
    else:
        width = sz2 - sz1 + radius
        for i in range(sz1):
            mask[i, max(0, i - radius) : min(sz2, i + width) + 1] = True
    return mask


def itakura_mask(sz1: int, sz2: int, max_slope: float) -> np.ndarray:
    """tslearn's Itakura mask ``(sz1, sz2)`` (same code as ``tslearn.metrics.itakura_mask``).

    Raises:
        ValueError: the slope admits no path between these lengths.
    """
    given = float(max_slope)
    min_slope = 1 / given
    max_slope = given * (float(sz1) / float(sz2))
    min_slope *= float(sz1) / float(sz2)
    steps = np.arange(sz2)
    lower = np.ceil(
        np.maximum(
            np.round(min_slope * steps, 2),
            np.round((sz1 - 1) - max_slope * (sz2 - 1) + max_slope * steps, 2),
        )
    )
    upper = np.floor(
        np.minimum(
            np.round(max_slope * steps, 2),
            np.round((sz1 - 1) - min_slope * (sz2 - 1) + min_slope * steps, 2),
        )
        + 1
    )
    mask = np.zeros((sz1, sz2), dtype=bool)
    for i in range(sz2):
        mask[int(lower[i]) : int(upper[i]), i] = True
    if not (mask.any(axis=1).all() and mask.any(axis=0).all()):
        raise ValueError(
            f"dtw.window='itakura' with itakura_max_slope={given:g} "
            f"admits no warping path between lengths {sz1} and {sz2}"
        )
    return mask


@functools.lru_cache(maxsize=4096)
def _row_bounds_cached(
    n_rows: int, n_cols: int, window: str, radius: int, slope: float
) -> tuple[np.ndarray, np.ndarray]:
    if window == "none":
        return np.zeros(n_rows, dtype=np.int64), np.full(n_rows, n_cols, dtype=np.int64)
    if window == "sakoe_chiba":
        mask = sakoe_chiba_mask(n_rows, n_cols, radius)
    else:
        mask = itakura_mask(n_rows, n_cols, slope)
    if not mask.any(axis=1).all():
        raise ValueError(
            f"dtw.window={window!r}: some rows of the {n_rows}x{n_cols} mask are empty"
        )
    lo = mask.argmax(axis=1).astype(np.int64)
    hi = (n_cols - mask[:, ::-1].argmax(axis=1)).astype(np.int64)
    contiguous = (mask.sum(axis=1) == hi - lo).all()
    monotone = (np.diff(lo) >= 0).all() and (np.diff(hi) >= 0).all()
    if not (contiguous and monotone):
        raise ValueError(f"dtw.window={window!r} gives a mask the banded kernel cannot use")
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


def row_bounds(
    n_rows: int, n_cols: int, band: Band | BandSource, ref_length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row admissible column range ``[lo[i], hi[i])`` of tslearn's DTW mask.

    Args:
        n_rows: series length (rows of the cost matrix).
        n_cols: reference length (columns).
        band: the DTW constraint in steps (a config is turned into one for ``ref_length``).
        ref_length: length a config's Sakoe-Chiba ``radius_fraction`` refers to (default ``n_cols``).

    Raises:
        ValueError: the constraint admits no path for these lengths (e.g. Itakura slope).
    """
    band = as_band(band, ref_length or n_cols)
    return _row_bounds_cached(
        int(n_rows), int(n_cols), band.window, int(band.radius), float(band.max_slope)
    )


@njit(cache=True, nogil=True)
def _dtw_one(s, ref, lo, hi, cum, out, cnt, path_i, path_j):  # pragma: no cover - numba
    """DTW of ``s`` (L1, C) onto ``ref`` (L2, C), both float64.

    ``cum`` is a (L1+1, L2+1) scratch buffer; only cells the recursion reads are written.
    Fills ``out`` (L2, C) with the per-reference-step mean of matched series points and
    ``path_i/path_j`` with the warping path in reverse order. Returns (distance, path_length).
    """
    l1 = s.shape[0]
    l2 = ref.shape[0]
    n_ch = s.shape[1]
    inf = np.inf
    # row 0 of cum: cum[0,0] = 0, cum[0, 1..hi[0]] = inf
    cum[0, 0] = 0.0
    for c in range(1, hi[0] + 1):
        cum[0, c] = inf
    for i in range(l1):
        r = i + 1
        a = lo[i]
        b = hi[i]
        cum[r, a] = inf  # left border (cum[r, 0] for a == 0)
        for j in range(a, b):
            d = 0.0
            for k in range(n_ch):
                diff = s[i, k] - ref[j, k]
                d += diff * diff
            up = cum[i, j + 1]
            left = cum[r, j]
            diag = cum[i, j]
            m = up
            if left < m:
                m = left
            if diag < m:
                m = diag
            cum[r, j + 1] = d + m
        # the next row reads this row up to column hi[i+1]
        nb = hi[i + 1] if i + 1 < l1 else b
        for c in range(b + 1, nb + 1):
            cum[r, c] = inf
    # backtrack on acc = cum[1:, 1:] with tslearn's rule
    for j in range(l2):
        cnt[j] = 0.0
        for k in range(n_ch):
            out[j, k] = 0.0
    i = l1 - 1
    j = l2 - 1
    n = 0
    while True:
        path_i[n] = i
        path_j[n] = j
        n += 1
        cnt[j] += 1.0
        for k in range(n_ch):
            out[j, k] += s[i, k]
        if i == 0 and j == 0:
            break
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag = cum[i, j]
            up = cum[i, j + 1]
            left = cum[i + 1, j]
            if diag <= up and diag <= left:
                i -= 1
                j -= 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
    for j in range(l2):
        for k in range(n_ch):
            out[j, k] /= cnt[j]
    return np.sqrt(cum[l1, l2]), n


@njit(cache=True, parallel=True)
def _align_batch(
    data, lengths, ref, los, his, group, n_chunks, out, costs, counts, want_counts
):  # pragma: no cover - numba
    """Align every series of ``data`` (N, Lmax, C) (any float dtype) onto ``ref`` (L2, C) float64.

    ``los/his`` (G, Lmax) are the row bounds for length group ``group[n]``. Writes ``out``
    (N, L2, C), ``costs`` (N,) and, if ``want_counts``, ``counts`` (N, L2): the number of series
    points matched to each reference step.
    """
    n_series = data.shape[0]
    lmax = data.shape[1]
    n_ch = data.shape[2]
    l2 = ref.shape[0]
    per = (n_series + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        cum = np.empty((lmax + 1, l2 + 1), dtype=np.float64)
        s = np.empty((lmax, n_ch), dtype=np.float64)
        acc = np.empty((l2, n_ch), dtype=np.float64)
        cnt = np.empty(l2, dtype=np.float64)
        pi = np.empty(lmax + l2, dtype=np.int64)
        pj = np.empty(lmax + l2, dtype=np.int64)
        start = chunk * per
        stop = min(n_series, start + per)
        for n in range(start, stop):
            l1 = lengths[n]
            for t in range(l1):
                for k in range(n_ch):
                    s[t, k] = data[n, t, k]
            g = group[n]
            dist, _ = _dtw_one(s[:l1], ref, los[g, :l1], his[g, :l1], cum, acc, cnt, pi, pj)
            costs[n] = dist
            for j in range(l2):
                for k in range(n_ch):
                    out[n, j, k] = acc[j, k]
            if want_counts:
                for j in range(l2):
                    counts[n, j] = cnt[j]


def _bounds_table(
    lengths: np.ndarray, ref_length: int, band: Band
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uniq = np.unique(lengths)
    lmax = int(lengths.max())
    los = np.zeros((len(uniq), lmax), dtype=np.int64)
    his = np.zeros((len(uniq), lmax), dtype=np.int64)
    for g, n in enumerate(uniq):
        lo, hi = row_bounds(int(n), ref_length, band)
        los[g, :n] = lo
        his[g, :n] = hi
    group = np.searchsorted(uniq, lengths).astype(np.int64)
    return los, his, group


def align_to_reference(
    data: np.ndarray,
    lengths: np.ndarray | None,
    reference: np.ndarray,
    band: Band | BandSource,
    out_dtype: type = np.float32,
    return_counts: bool = False,
) -> tuple[np.ndarray, ...]:
    """DTW-align every series onto ``reference`` and average the matched points per step.

    Args:
        data: ``(n_series, max_length, n_channels)`` series (float32/float64), padded after
            each series' length.
        lengths: ``(n_series,)`` true lengths (None: all ``max_length``).
        reference: ``(ref_length, n_channels)``.
        band: DTW constraint in steps (a config is turned into one for this reference).
        out_dtype: dtype of the aligned output.
        return_counts: also return ``(n_series, ref_length)`` float64 match counts.

    Returns:
        ``(aligned, costs)`` or ``(aligned, costs, counts)``: ``(n_series, ref_length,
        n_channels)`` where step ``j`` is the mean of the series points the warping path matches
        to reference step ``j``, and ``(n_series,)`` DTW distances (tslearn's ``dtw_path``
        distance: sqrt of the summed squared costs).
    """
    data = np.ascontiguousarray(data)
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    n = data.shape[0]
    if lengths is None:
        lengths = np.full(n, data.shape[1], dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    ref = np.ascontiguousarray(reference, dtype=np.float64)
    out = np.empty((n, ref.shape[0], data.shape[2]), dtype=out_dtype)
    costs = np.empty(n, dtype=np.float64)
    counts = np.empty((n, ref.shape[0]) if return_counts else (1, 1), dtype=np.float64)
    if n > 0:
        los, his, group = _bounds_table(lengths, ref.shape[0], as_band(band, ref.shape[0]))
        n_chunks = int(min(n, max(1, numba.get_num_threads()) * 8))
        _align_batch(
            data, lengths, ref, los, his, group, n_chunks, out, costs, counts, return_counts
        )
    return (out, costs, counts) if return_counts else (out, costs)


def dtw_path(
    series: np.ndarray, reference: np.ndarray, band: Band | BandSource
) -> tuple[list[tuple[int, int]], float]:
    """Our kernel's warping path and distance for one pair, in tslearn's ``dtw_path`` format.

    Args:
        series: ``(l1, n_channels)``.
        reference: ``(l2, n_channels)``.
        band: DTW constraint in steps (a config is turned into one for this reference).

    Returns:
        ``(path, distance)`` with ``path`` a list of ``(i, j)`` pairs from (0, 0) to (l1-1, l2-1).
    """
    s = np.ascontiguousarray(series, dtype=np.float64)
    ref = np.ascontiguousarray(reference, dtype=np.float64)
    lo, hi = row_bounds(len(s), len(ref), band)
    cum = np.empty((len(s) + 1, len(ref) + 1))
    out = np.empty((len(ref), s.shape[1]))
    cnt = np.empty(len(ref))
    pi = np.empty(len(s) + len(ref), dtype=np.int64)
    pj = np.empty(len(s) + len(ref), dtype=np.int64)
    dist, n = _dtw_one(s, ref, lo, hi, cum, out, cnt, pi, pj)
    path = [(int(pi[k]), int(pj[k])) for k in range(n - 1, -1, -1)]
    return path, float(dist)


def tslearn_kwargs(band: Band | BandSource, ref_length: int) -> dict[str, object]:
    """Keyword arguments giving ``tslearn.metrics.dtw_path`` the same constraint."""
    return as_band(band, ref_length).tslearn_kwargs()
