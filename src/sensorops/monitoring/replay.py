"""Replays for demos and the detection-delay study: ``python -m sensorops.monitoring.replay``.

``write``: score clean or drifted traffic with the watched version and write it to the project's
prediction log (and feedback) through the serving side's :class:`PartitionedLog`. Traffic is
the synthetic generator's (``--source synthetic``: the training calibration, fresh series) or a
bootstrap of the project's own test split (``--source test_split``, e.g. BasicMotions).

``delay``: for each drift mode, the smallest window (records) at which monitoring leaves ``ok``
and names the drifted channel (the new class: any flagged signal), over several seeds; for the
slow covariate shift, the records after its onset. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sensorops.monitoring import simulate as sim
from sensorops.monitoring.config import MonitoringConfig, load_monitoring_config
from sensorops.monitoring.log_reader import read_window
from sensorops.monitoring.monitor import monitor
from sensorops.monitoring.reference import Reference


def test_split_traffic(frame: pd.DataFrame, channels: list[str], n: int, seed: int) -> sim.Traffic:
    """``n`` series drawn with replacement from the test split of a long table."""
    test = frame[frame["split"] == "test"].sort_values(["series_id", "t"], kind="stable")
    groups = [(str(k), g) for k, g in test.groupby("series_id", sort=True)]
    if not groups:
        raise ValueError("the long table has no test split to replay")
    pick = np.random.default_rng(seed).integers(len(groups), size=n)
    values = [groups[i][1][channels].to_numpy(dtype=np.float64) for i in pick]
    labels = [str(groups[i][1]["label"].iloc[0]) for i in pick]
    return sim.Traffic(values, labels, tuple(channels))


def write_replay(
    root: Path, model: Any, version: str, name: str, traffic: sim.Traffic, prefix: str,
    labelled: bool, raw: bool, start: str | np.datetime64 = "2026-12-04T10:00:00",
    alias: str = "replay",
) -> list[dict[str, Any]]:  # fmt: skip
    """Score ``traffic`` and append it to ``root/prediction_log`` (+ ``root/feedback``)."""
    from sensorops.serving.prediction_log import PartitionedLog

    recs = sim.log_records(model, traffic, name=name, version=version, alias=alias,
                           start=np.datetime64(start, "us"), request_prefix=prefix,
                           with_raw_input=raw)  # fmt: skip
    log = PartitionedLog(root / "prediction_log", flush_records=100_000, flush_s=3600)
    log.append(recs)
    log.close()
    if labelled:
        fb = PartitionedLog(root / "feedback", flush_records=100_000, flush_s=3600,
                            partition_by=("date",))  # fmt: skip
        fb.append(sim.feedback_records(recs, traffic.labels))
        fb.close()
    return recs


def _detected(report: Any, spec: sim.DriftSpec, channels: list[str]) -> bool:
    if report.decision == "ok":
        return False
    if spec.mode == "new_class":
        return any(d["flagged"] for d in report.drift)
    return channels[spec.channel] in report.drifted_channels


def detection_delay(
    model: Any, reference: Reference, make: Callable[[int, int], sim.Traffic],
    spec: sim.DriftSpec, config: MonitoringConfig, sizes: list[int], seeds: list[int],
    workdir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Smallest window size in ``sizes`` that detects ``spec``, per seed (None: not within)."""
    out = []
    for seed in seeds:
        found = None
        horizon = make(max(sizes), seed)
        drifted = sim.apply_drift(horizon, spec, seed)
        for n in sizes:
            part = sim.Traffic(drifted.values[:n], drifted.labels[:n], drifted.channels)
            d = workdir / f"{spec.mode}-{seed}-{n}"
            write_replay(d, model, reference.version, reference.model, part, "d", False, False)
            report, _ = monitor(read_window(d / "prediction_log"), reference, config)
            if _detected(report, spec, reference.channels):
                found = n
                break
        out.append(found)
    hits = [x for x in out if x is not None]
    return {"mode": spec.mode, "per_seed": out, "median": float(np.median(hits)) if hits else None,
            "max": max(hits) if hits else None, "detected": f"{len(hits)}/{len(out)}"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import mlflow

    from sensorops.monitoring import publish

    ap = argparse.ArgumentParser(prog="python -m sensorops.monitoring.replay")
    ap.add_argument("command", choices=["write", "delay"])
    ap.add_argument("--project", type=Path, default=Path("."))
    ap.add_argument("--version", required=True)
    ap.add_argument("--model", default="sensorops-classifier")
    ap.add_argument("--source", choices=["synthetic", "test_split"], default="test_split")
    ap.add_argument("--mode", default="none", choices=["none", *sim.DRIFT_MODES])
    ap.add_argument("--channel", type=int, default=1)
    ap.add_argument("--gain", type=float, default=1.5)
    ap.add_argument("--offset", type=float, default=1.0)
    ap.add_argument("--shift", type=float, default=2.0)
    ap.add_argument("--share", type=float, default=1.0, help="new_class: share of the traffic")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--prefix", default="replay")
    ap.add_argument("--labelled", action="store_true")
    ap.add_argument("--raw", action="store_true", help="log the raw input (input_values)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--min-records", type=int, default=None, help="delay: drift.min_records")
    args = ap.parse_args(argv)
    project = args.project.resolve()
    mlflow.set_tracking_uri(mlflow.get_tracking_uri())
    overrides: dict[str, Any] = {"model": args.model, "version": args.version}
    if args.min_records is not None:
        overrides["drift"] = {"min_records": args.min_records}
    cfg = load_monitoring_config(overrides)
    model = publish.load_model(
        args.model, args.version, cache=project / "data/06_models/monitoring/models"
    )
    frame = pd.read_parquet(project / "data/02_intermediate/sensor_long.parquet")
    # after a retraining the table also holds the log's series: replay the original ones only
    frame = frame[~frame["series_id"].astype(str).str.startswith("log:")]
    channels = list(model.state.channels)
    if args.source == "synthetic":
        from sensorops.config_validation import load_project_parameters
        from sensorops.timeseries.config import SyntheticConfig

        params = load_project_parameters(project)
        syn = SyntheticConfig(**params["ingestion"]["source"]["synthetic"])

        def make(n: int, seed: int) -> sim.Traffic:
            return sim.synthetic_traffic(syn, n, 1000 + seed)
    else:

        def make(n: int, seed: int) -> sim.Traffic:
            return test_split_traffic(frame, channels, n, seed)

    spec_kw = {
        "channel": args.channel,
        "gain": args.gain,
        "offset": args.offset,
        "shift": args.shift,
        "share": args.share,
    }
    if args.command == "write":
        traffic = sim.apply_drift(
            make(args.n, args.seed), sim.DriftSpec(mode=args.mode, **spec_kw), args.seed
        )
        recs = write_replay(project / "data/07_model_output", model, args.version, args.model,
                            traffic, args.prefix, args.labelled, args.raw)  # fmt: skip
        sys.stdout.write(
            f"wrote {len(recs)} records ({args.mode}) to {project / 'data/07_model_output'}" + "\n"
        )
        return 0
    from sensorops.monitoring.reference import reference_path

    ref = Reference.load(reference_path(cfg.reference.cache_dir if Path(cfg.reference.cache_dir).is_absolute()
                                        else project / cfg.reference.cache_dir, args.model, args.version))  # fmt: skip
    import tempfile

    sizes = [5, 8, 10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320]
    sizes = [n for n in sizes if n >= cfg.drift.min_records] or [cfg.drift.min_records]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in sim.DRIFT_MODES:
            spec = sim.DriftSpec(mode=mode, **spec_kw)  # type: ignore[arg-type]
            rows.append(
                detection_delay(
                    model, ref, make, spec, cfg, sizes, list(range(args.seeds)), Path(tmp)
                )
            )
    sys.stdout.write(
        "| drift mode | records to detection (median) | worst seed | detected |" + "\n"
    )
    sys.stdout.write("|---|---|---|---|" + "\n")
    for r in rows:
        sys.stdout.write(f"| {r['mode']} | {r['median']} | {r['max']} | {r['detected']} |" + "\n")
    if args.out:
        args.out.write_text(json.dumps({"sizes": sizes, "spec": spec_kw, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
