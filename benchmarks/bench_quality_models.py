"""Model quality against the textbook 1-NN DTW baseline, per dataset and architecture (JSON).

For each dataset the project's own ``ingestion`` pipeline runs once (``kedro run`` in an
isolated copy of the project: nothing is written to this checkout's data/ or mlflow.db; the
data come from aeon's bundled files or the seeded generator, nothing downloads). Then, for each
architecture and seed, training runs with the DEFAULT ``training.trainer`` parameters of
``conf/base`` (only ``seed`` and ``model.name`` change; 2 gloo workers as in ``make run``), and
the best checkpoint is scored on the test split next to the textbook baseline of the same run:
``tslearn`` ``KNeighborsTimeSeriesClassifier(n_neighbors=1, metric="dtw")`` fitted on all
train+val series of the contract data as loaded (plus its Sakoe-Chiba band variant).

Usage::

    python benchmarks/bench_quality_models.py                       # every dataset, default model
    python benchmarks/bench_quality_models.py --datasets basicmotions --seeds 0,1,2 \\
        --models resnet1d,gat --override '{"augment": {"cutmix_prob": 0.0}}'

Prints one JSON line per (dataset, model, seed) and a final JSON summary with mean +- std and
the baselines; ``--markdown`` also prints the README table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AEON_DATA = "aeon/datasets/data"


def _aeon_file(name: str, split: str) -> str:
    import aeon.datasets

    return str(Path(aeon.datasets.__file__).parent / "data" / name / f"{name}_{split}.ts")


def dataset_params(name: str) -> list[str]:
    """``kedro run --params`` entries selecting one dataset."""
    if name == "basicmotions":
        return ["ingestion.source.kind=basicmotions"]
    if name == "synthetic2000":
        return [
            "ingestion.source.kind=synthetic",
            "ingestion.source.synthetic.n_series=2000",
        ]
    aeon = {
        "japanese_vowels": "JapaneseVowels",
        "pickup_gesture_wiimote_z": "PickupGestureWiimoteZ",
    }
    if name in aeon:
        return [
            "ingestion.source.kind=ts",
            f"ingestion.source.path={_aeon_file(aeon[name], 'TRAIN')}",
            f"ingestion.source.test_path={_aeon_file(aeon[name], 'TEST')}",
        ]
    raise SystemExit(
        f"--datasets: unknown {name!r}; valid: basicmotions, japanese_vowels, "
        "pickup_gesture_wiimote_z, synthetic2000"
    )


def run_ingestion(project: Path, name: str) -> None:
    from tests.kedro_project import copy_project, run_kedro

    copy_project(ROOT, project)
    params = ",".join(["ingestion.ablation.enabled=false", *dataset_params(name)])
    uri = f"sqlite:///{project / 'mlflow.db'}"
    done = run_kedro(project, ["run", "--pipelines=ingestion", f"--params={params}"], uri)
    if done.returncode != 0:
        raise SystemExit(
            f"ingestion of {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )


def main() -> None:
    from sensorops.model_input import load_model_input
    from sensorops.training.evaluation import EvaluationConfig, evaluate_checkpoint
    from sensorops.training.launcher import launch_training

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--datasets", default="basicmotions,japanese_vowels,pickup_gesture_wiimote_z,synthetic2000"
    )
    ap.add_argument("--models", default="default", help="comma list; 'default' = conf/base's")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--override", default="{}", help="JSON merged into training.trainer")
    ap.add_argument("--markdown", action="store_true", help="also print the README table (stderr)")
    ap.add_argument("--quick", action="store_true", help="smoke run: basicmotions, seed 0")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.seeds = "basicmotions", "0"
    base = yaml.safe_load((ROOT / "conf/base/parameters_training.yml").read_text())["training"]
    override = json.loads(args.override)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp:
        for dataset in args.datasets.split(","):
            project = Path(tmp) / dataset
            t0 = time.perf_counter()
            run_ingestion(project, dataset)
            ingest_s = time.perf_counter() - t0
            mi = load_model_input(project / "data/05_model_input/model_input.npz")
            contract = pd.read_parquet(project / "data/02_intermediate/sensor_long.parquet")
            baselines: dict[str, Any] | None = None
            for model in args.models.split(","):
                accs = []
                for seed in seeds:
                    p = copy.deepcopy(base["trainer"])
                    for key, value in override.items():
                        if isinstance(value, dict):
                            p.setdefault(key, {}).update(value)
                        else:
                            p[key] = value
                    if model != "default":
                        p["model"]["name"] = model
                    p.update(
                        seed=seed,
                        progress_bar="never",
                        output_dir=str(project / f"run_{model}_{seed}"),
                    )
                    p["mlflow"]["enabled"] = False
                    p["checkpoint"]["resume"] = "never"
                    t1 = time.perf_counter()
                    summary = launch_training(p, mi)
                    train_s = time.perf_counter() - t1
                    first = baselines is None
                    # the preprocessed row is skipped: tslearn pays ~0.15 ms per pair
                    ev = EvaluationConfig(dtw_baseline=False, textbook_baseline=first)
                    report = evaluate_checkpoint(
                        summary["best_checkpoint"], mi, ev, contract=contract if first else None
                    ).report
                    if first:
                        baselines = {
                            key: {
                                "accuracy": report[key]["accuracy"],
                                "seconds": round(report[key]["seconds"], 2),
                                "n_reference_series": report[key]["n_reference_series"],
                                "sakoe_chiba_radius": report[key].get("sakoe_chiba_radius"),
                            }
                            for key in (
                                "baseline_textbook_1nn_dtw",
                                "baseline_textbook_1nn_dtw_sakoe_chiba",
                                "baseline_1nn_dtw",
                            )
                            if report.get(key)
                        }
                    accs.append(report["accuracy"])
                    row = {
                        "dataset": dataset,
                        "model": summary["model_name"],
                        "seed": seed,
                        "test_accuracy": report["accuracy"],
                        "best_step": summary["best_step"],
                        "final_step": summary["final_step"],
                        "train_seconds": round(train_s, 1),
                        "n_train": int(len(mi.y["train"])),
                        "n_test": int(len(mi.y["test"])),
                    }
                    print(json.dumps(row), flush=True)
                rows.append(
                    {
                        "dataset": dataset,
                        "model": summary["model_name"],
                        "seeds": seeds,
                        "accuracies": accs,
                        "mean": float(np.mean(accs)),
                        "std": float(np.std(accs)),
                        "baselines": baselines,
                        "ingestion_seconds": round(ingest_s, 1),
                        "override": override,
                    }
                )
    if args.markdown:
        out = sys.stderr
        print(
            "| dataset | model | test accuracy (mean ± std, seeds) | 1-NN DTW textbook | band | preprocessed |",
            file=out,
        )
        print("|---|---|---|---|---|---|", file=out)
        for r in rows:
            b = r["baselines"] or {}

            def get(k: str, b: dict[str, Any] = b) -> str:
                return f"{b[k]['accuracy']:.3f}" if k in b else "-"

            print(
                f"| {r['dataset']} | {r['model']} | {r['mean']:.3f} ± {r['std']:.3f} ({len(r['seeds'])}) | "
                f"{get('baseline_textbook_1nn_dtw')} | {get('baseline_textbook_1nn_dtw_sakoe_chiba')} | "
                f"{get('baseline_1nn_dtw')} |",
                file=out,
            )
    print(json.dumps({"benchmark": "quality_models", "results": rows}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
