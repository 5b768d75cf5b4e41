"""Three-tier data-quality gate (Great Expectations) vs the same checks in plain pandas.

Data: ``--series`` series x ``--length`` steps (default 10,000 x 100 = 1,000,000 rows) x 8
channels, 4 classes, splits train/val/test. Both sides compute the same statistics frames (shared
code) and the same separability probe; the GE side validates them with the generated suites and
builds Data Docs, the pandas side evaluates the same thresholds with pandas expressions.

Prints progress lines, then one JSON object as the last line with ``seconds_total``,
``seconds_per_tier``, ``pandas_seconds_total``, ``pandas_seconds_per_tier``,
``seconds_import_and_context`` (paid once per process), ``seconds_total_warm`` (a second run),
``peak_rss_mb`` and the tier outcomes. Usage::

    python benchmarks/bench_quality.py           # 1,000,000 rows
    python benchmarks/bench_quality.py --quick   # 20,000 rows
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sensorops.quality import load_config, validate_table
from sensorops.quality.config import DataQualityConfig
from sensorops.quality.frames import (
    abs_correlation_frame,
    class_stats_frame,
    correlation_frame,
    infer_channels,
    series_labels,
    series_stats_frame,
)
from sensorops.quality.gate import _probe_frames, expected_labels

CLASSES = ("a", "b", "c", "d")


def make_table(n_series: int, length: int, n_channels: int = 8, seed: int = 0) -> pd.DataFrame:
    """Long table ``n_series * length`` rows: class-dependent amplitude and offset, random phases."""
    rng = np.random.default_rng(seed)
    cls = np.arange(n_series) % len(CLASSES)
    # every split gets whole blocks of all classes
    block = (np.arange(n_series) // len(CLASSES)) % 20
    split = np.where(block < 14, "train", np.where(block < 17, "val", "test"))
    t = np.tile(np.arange(length, dtype=np.int64), n_series)
    sid = np.repeat(np.array([f"s{i:06d}" for i in range(n_series)], dtype=object), length)
    data: dict[str, object] = {"series_id": sid, "t": t}
    amp = np.repeat(1.0 + cls, length)
    off = np.repeat(0.5 * cls, length)
    for j in range(n_channels):
        phase = np.repeat(rng.uniform(0, 2 * np.pi, n_series), length)
        data[f"ch{j}"] = (amp * np.sin(2 * np.pi * (j + 1) * t / length + phase) + off
                          + rng.normal(0, 0.2, n_series * length)).astype("float64")  # fmt: skip
    data["label"] = np.repeat(np.array(CLASSES, dtype=object)[cls], length)
    data["split"] = np.repeat(split, length)
    return pd.DataFrame(data)


def pandas_gate(
    frame: pd.DataFrame, config: DataQualityConfig
) -> tuple[dict[int, float], dict[int, bool]]:
    """The same rules and thresholds as the suites, evaluated with plain pandas."""
    seconds: dict[int, float] = {}
    ok: dict[int, bool] = {}
    t1, t2, t3 = config.basic_statistics, config.business_rules, config.separability
    stage = config.stage("raw")
    chans = infer_channels(frame, config.channels)
    per_series = series_labels(frame)
    labels = expected_labels(config, per_series)

    start = time.perf_counter()
    checks = []
    for ch in chans:
        col = frame[ch]
        checks.append(col.isna().mean() <= t1.max_missing_rate)
        low, high = stage.value_range(ch)
        nn = col.dropna()
        checks.append(
            ((nn >= low) & (nn <= high)).mean() >= t1.value_range_mostly if len(nn) else True
        )
        checks.append(col.std() >= t1.min_channel_std)
    checks.append(len(frame) >= t1.min_rows)
    corr = abs_correlation_frame(correlation_frame(frame, chans))
    checks.append(bool((corr[list(chans)].max() <= t1.max_abs_correlation).all()))
    series = series_stats_frame(frame)
    classes = class_stats_frame(per_series, labels)
    checks.append(bool((classes["count"] >= max(1, t1.min_series_per_class)).all()))
    checks.append(bool(classes["share"].between(t1.min_class_share, t1.max_class_share).all()))
    checks.append(len(series) >= t1.min_series)
    seconds[1], ok[1] = time.perf_counter() - start, all(checks)

    start = time.perf_counter()
    checks = [bool(frame[c].notna().all()) for c in ("series_id", "t", "label", "split")]
    checks.append(not frame.duplicated(["series_id", "t"]).any())
    checks.append(bool(frame["label"].isin(labels).all()))
    checks.append(set(labels) <= set(frame["label"].dropna().unique()))
    checks.append(bool(frame["split"].isin(config.splits).all()))
    checks.append(bool(series["t_strictly_increasing"].all()))
    checks.append(bool((series["n_steps"] >= t2.min_series_length).all()))
    checks.append(bool((series["interval_deviation"] <= t2.sampling_interval_tolerance).all()))
    checks.append(bool((series["n_splits"] <= 1).all()))
    checks.append(bool((series["n_labels"] <= 1).all()))
    seconds[2], ok[2] = time.perf_counter() - start, all(checks)

    start = time.perf_counter()
    scores, recall, _ = _probe_frames(frame, per_series, chans, config)
    checks = [
        float(scores["balanced_accuracy"].iloc[0]) >= t3.min_balanced_accuracy,
        float(scores["margin_over_chance"].iloc[0]) >= t3.min_margin_over_chance,
        bool((recall["recall"] >= t3.min_class_recall).all()),
    ]
    seconds[3], ok[3] = time.perf_counter() - start, all(checks)
    return seconds, ok


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 series x 100 steps (20,000 rows)")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--length", type=int, default=100)
    args = parser.parse_args()
    n_series = 200 if args.quick else args.series
    logging.basicConfig(level=logging.WARNING)

    import sklearn.linear_model
    import sklearn.model_selection  # noqa: F401

    frame = make_table(n_series, args.length)
    rss_data = peak_rss_mb()
    print(
        f"table: {len(frame):,} rows x {frame.shape[1]} columns; peak RSS {rss_data:.0f} MB",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp:
        config = load_config(
            {"gx_project_dir": f"{tmp}/gxproj", "data_docs_dir": f"{tmp}/data_docs"}
        )

        start = time.perf_counter()
        pandas_seconds, pandas_ok = pandas_gate(frame, config)
        pandas_total = time.perf_counter() - start
        rss_pandas = peak_rss_mb()
        print(f"pandas: {pandas_total:.2f} s {pandas_seconds} ok={pandas_ok}", flush=True)

        from sensorops.quality.context import get_gx_context

        start = time.perf_counter()
        get_gx_context(config.gx_project_dir)  # import great_expectations + file context, once
        import_seconds = time.perf_counter() - start

        start = time.perf_counter()
        result = validate_table(frame, config)
        total = time.perf_counter() - start
        rss_ge = peak_rss_mb()
        per_tier = {f"tier{t.tier}": round(t.seconds, 3) for t in result.tiers}
        print(
            f"great_expectations: {total:.2f} s {per_tier} (import+context {import_seconds:.2f} s)",
            flush=True,
        )

        start = time.perf_counter()
        validate_table(frame, config)
        warm = time.perf_counter() - start
        docs_files = sum(1 for _ in Path(config.data_docs_dir).rglob("*") if _.is_file())

    out = {
        "rows": len(frame),
        "channels": 8,
        "series": n_series,
        "seconds_total": round(total, 3),
        "seconds_per_tier": per_tier,
        "seconds_data_docs_and_overhead": round(total - sum(t.seconds for t in result.tiers), 3),
        "seconds_total_warm": round(warm, 3),
        "seconds_import_and_context": round(import_seconds, 3),
        "pandas_seconds_total": round(pandas_total, 3),
        "pandas_seconds_per_tier": {f"tier{k}": round(v, 3) for k, v in pandas_seconds.items()},
        "ge_over_pandas": round(total / pandas_total, 2) if pandas_total else None,
        "peak_rss_mb": round(rss_ge, 1),
        "peak_rss_mb_after_data": round(rss_data, 1),
        "peak_rss_mb_after_pandas": round(rss_pandas, 1),
        "tiers_passed": {f"tier{t.tier}": t.success for t in result.tiers},
        "pandas_tiers_passed": {f"tier{k}": v for k, v in pandas_ok.items()},
        "expectations_evaluated": sum(t.evaluated for t in result.tiers),
        "data_docs_files": docs_files,
        "target_seconds_total": 15.0,
        "target_met": total < 15.0,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
