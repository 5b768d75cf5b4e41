"""Ingestion benchmark: outlier removal and DTW alignment throughput, ours vs tslearn.

For each size, synthetic industrial series (all defects, equal length) are generated; then

- outlier removal: ``OutlierFilter`` (pyod IForest, spike repair + series scoring) fitted on
  80% of the series and applied to all of them -> series/s;
- alignment: our numba kernel (``align_to_reference``: path + per-step averaging) onto one
  reference vs a plain loop of ``tslearn.metrics.dtw_path`` per series onto the same reference
  with the same Sakoe-Chiba band, timed side by side in this process after a warm-up of both
  (numba JIT is paid once per process, outside the timings);
- paths_identical: our warping paths and distances against tslearn's on a sample;
- peak_memory_ratio: (input bytes + peak extra RSS during outlier removal and alignment) /
  input bytes, with the input = the float64 ``(n_series, length, channels)`` arrays.

Usage::

    python benchmarks/bench_ingestion.py            # 2,000 / 8,000 / 20,000 x 6 x 256
    python benchmarks/bench_ingestion.py --quick    # small sizes, a smoke test

The last printed line is one JSON object (the largest size) with ``alignment_speedup_vs_tslearn``,
``paths_identical``, ``outlier_series_per_s``, ``alignment_series_per_s``, ``peak_memory_ratio``
and a ``sizes`` list with every size.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import warnings
from pathlib import Path

import numba
import numpy as np

from sensorops.timeseries.alignment import SeriesAligner
from sensorops.timeseries.config import (
    AlignmentConfig,
    DTWConfig,
    OutlierConfig,
    ReferenceConfig,
    SyntheticConfig,
)
from sensorops.timeseries.dtw import align_to_reference, dtw_path, tslearn_kwargs
from sensorops.timeseries.outliers import OutlierFilter
from sensorops.timeseries.series import SeriesSet
from sensorops.timeseries.synthetic import generate_series

FULL_SIZES = [(2_000, 6, 256), (8_000, 6, 256), (20_000, 6, 256)]
QUICK_SIZES = [(200, 6, 64), (400, 6, 64), (800, 6, 64)]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def make_data(n: int, channels: int, length: int, seed: int) -> tuple[SeriesSet, np.ndarray]:
    """Equal-length synthetic series packed in one float64 block ``(n, length, channels)``."""
    cfg = SyntheticConfig(
        n_series=n, n_channels=channels, length=length, length_jitter=0.0, seed=seed
    )
    series, _, _, _ = generate_series(cfg)
    block = np.stack(series.values)
    del series.values[:]
    splits = np.where(np.arange(n) < int(0.8 * n), "train", "test")
    values = [block[i] for i in range(n)]
    return SeriesSet(
        series.ids, series.labels, splits.astype(str), values, series.channels, padded=block
    ), block


def bench_size(n: int, channels: int, length: int, sample: int, seed: int) -> dict[str, object]:
    series, block = make_data(n, channels, length, seed)
    input_bytes = block.nbytes
    dtw_cfg = DTWConfig()  # Sakoe-Chiba, radius 10% of the reference length
    out_cfg = OutlierConfig(train_action="flag")  # keep every series so both paths see all of them
    gc.collect()
    rss0 = _status_kib("VmRSS")
    peak_ok = _reset_peak()

    t0 = time.perf_counter()
    filt = OutlierFilter(out_cfg).fit(series.split("train").values)
    result = filt.transform(series)
    t_outliers = time.perf_counter() - t0
    clean = result.series

    aligner = SeriesAligner(
        AlignmentConfig(
            reference=ReferenceConfig(scope="global", method="medoid", max_series=16), dtw=dtw_cfg
        )
    ).fit(clean.split("train"))
    reference = aligner.references_[0]
    data = clean.padded if clean.padded is not None else np.stack(clean.values)
    t0 = time.perf_counter()
    aligned, costs = align_to_reference(data, None, reference, dtw_cfg)
    t_ours = time.perf_counter() - t0
    peak_kib = _status_kib("VmHWM")
    extra = max(0, peak_kib - rss0) * 1024

    from tslearn.metrics import dtw_path as tslearn_dtw_path

    kwargs = tslearn_kwargs(dtw_cfg, len(reference))
    t0 = time.perf_counter()
    for i in range(n):
        tslearn_dtw_path(data[i], reference, **kwargs)
    t_tslearn = time.perf_counter() - t0

    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=min(sample, n), replace=False)
    mismatches = 0
    for i in idx:
        ours, dist = dtw_path(data[i], reference, dtw_cfg)
        theirs, tdist = tslearn_dtw_path(data[i], reference, **kwargs)
        mismatches += int(ours != theirs or dist != tdist or dist != costs[i])
    return {
        "n_series": n,
        "n_channels": channels,
        "length": length,
        "dtw_window": dtw_cfg.window,
        "sakoe_chiba_radius": dtw_cfg.sakoe_radius(len(reference)),
        "outlier_seconds": round(t_outliers, 4),
        "outlier_series_per_s": round(n / t_outliers, 1),
        "outliers_flagged": int(result.report["is_outlier"].sum()),
        "points_repaired": int(result.report["points_repaired"].sum()),
        "alignment_seconds": round(t_ours, 4),
        "alignment_series_per_s": round(n / t_ours, 1),
        "tslearn_seconds": round(t_tslearn, 4),
        "tslearn_series_per_s": round(n / t_tslearn, 1),
        "alignment_speedup_vs_tslearn": round(t_tslearn / t_ours, 2),
        "paths_checked": int(len(idx)),
        "path_mismatches": mismatches,
        "paths_identical": mismatches == 0,
        "input_bytes": int(input_bytes),
        "aligned_bytes": int(aligned.nbytes),
        "peak_extra_bytes": int(extra),
        "peak_memory_ratio": round((input_bytes + extra) / input_bytes, 3) if peak_ok else None,
    }


def warm_up() -> None:
    """Compile every numba specialisation (ours and tslearn's) before any timing."""
    from tslearn.metrics import dtw_path as tslearn_dtw_path

    series, block = make_data(40, 6, 32, seed=99)
    filt = OutlierFilter(OutlierConfig(train_action="flag")).fit(series.split("train").values)
    filt.transform(series)
    cfg = DTWConfig()
    align_to_reference(block, None, block[0], cfg)
    dtw_path(block[1], block[0], cfg)
    tslearn_dtw_path(block[1], block[0], **tslearn_kwargs(cfg, 32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--sample", type=int, default=500, help="series whose paths are compared")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="h5py not installed")
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    t0 = time.perf_counter()
    warm_up()
    print(
        json.dumps(
            {
                "warm_up_seconds": round(time.perf_counter() - t0, 2),
                "numba_threads": numba.get_num_threads(),
            }
        )
    )
    results = []
    for n, channels, length in sizes:
        res = bench_size(n, channels, length, args.sample, args.seed)
        results.append(res)
        print(json.dumps(res), flush=True)
        gc.collect()
    final = dict(results[-1])
    final["sizes"] = results
    final["quick"] = args.quick
    print(json.dumps(final))


if __name__ == "__main__":
    main()
