"""Compression benchmark: the whole compression step vs ONE plain fp32 dynamo export, side by side.

On the training pipeline's best checkpoint and ``mi_model_input`` (run ``make run`` or
``kedro run --pipelines=ingestion,data_quality,training,export`` first), in one run:

1. ``single_export_seconds``: one plain fp32 ``torch.onnx.export(dynamo=True)`` of the checkpoint
   (``sensorops.modeling.onnx_export.export_onnx``, opset of ``params:export``), in a fresh
   process as the export pipeline runs it (median of ``--repeats``);
2. ``compression_seconds``: :func:`sensorops.modeling.compress_checkpoint` with the project's
   ``params:compression`` (base, plus ``--env`` overrides), reusing the parity-checked fp32 export
   as the Kedro node does: every variant built, fine-tuned, parity-checked, evaluated, timed.

Target (issue 16): ``ratio = compression_seconds / single_export_seconds <= 3``. Prints one JSON
object with ``compression_seconds``, ``single_export_seconds``, ``ratio`` and ``variants``
(name, accuracy, delta, fidelity, flips, McNemar p, size ratio, gate).

Usage::

    python benchmarks/bench_compression.py [--repeats 1] [--no-weight-swap]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

_EXPORT = """
import sys, time, numpy as np, torch
from sensorops.architectures import load_checkpoint_model
from sensorops.model_input import load_model_input
from sensorops.modeling.onnx_export import export_onnx
model, _, _ = load_checkpoint_model(sys.argv[1])
X = load_model_input(sys.argv[2]).X["test"][:2]
t = time.perf_counter()
export_onnx(model, torch.from_numpy(np.ascontiguousarray(X)), sys.argv[3], opset=int(sys.argv[4]))
print(time.perf_counter() - t)
"""


def _params(name: str) -> dict:
    return yaml.safe_load((ROOT / f"conf/base/parameters_{name}.yml").read_text())[name]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-weight-swap", action="store_true")
    args = parser.parse_args()

    from sensorops.model_input import load_model_input
    from sensorops.modeling import CompressionConfig, compress_checkpoint, parse_config

    summary_path = ROOT / "data/06_models/training_summary.json"
    mi_path = ROOT / "data/05_model_input/model_input.npz"
    export_summary_path = ROOT / "data/06_models/export_summary.json"
    if not summary_path.is_file() or not mi_path.is_file():
        sys.exit(
            "no trained checkpoint: run `make run` (or the training and export pipelines) first"
        )
    checkpoint = json.loads(summary_path.read_text())["best_checkpoint"]
    export_summary = (
        json.loads(export_summary_path.read_text()) if export_summary_path.is_file() else None
    )
    opset = int(_params("export").get("opset", 20))
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for i in range(args.repeats):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _EXPORT,
                    checkpoint,
                    str(mi_path),
                    f"{tmp}/e{i}.onnx",
                    str(opset),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(float(out.stdout.strip().splitlines()[-1]))
        single = statistics.median(times)
        params = {**_params("compression"), "output_dir": f"{tmp}/compressed"}
        if args.no_weight_swap:
            params["weight_swap"] = False
        config = parse_config(CompressionConfig, params, "compression")
        mi = load_model_input(mi_path)
        t = time.perf_counter()
        table = compress_checkpoint(checkpoint, mi, config, export_summary=export_summary)
        compression = time.perf_counter() - t
    variants = [
        {
            "name": r.name,
            "accuracy": r.accuracy,
            "delta_points": r.delta_points,
            "fidelity": r.fidelity,
            "right_to_wrong": r.right_to_wrong,
            "wrong_to_right": r.wrong_to_right,
            "mcnemar_p": r.mcnemar_p,
            "size_ratio": r.size_ratio,
            "params_ratio": r.params_ratio,
            "finetune_steps": r.finetune_steps,
            "gate_passed": r.gate_passed,
        }
        for r in table.rows
    ]
    print(
        json.dumps(
            {
                "compression_seconds": round(compression, 2),
                "single_export_seconds": round(single, 2),
                "single_export_runs": [round(x, 2) for x in times],
                "ratio": round(compression / single, 3),
                "weight_swap": not args.no_weight_swap,
                "n_test_series": int(len(mi.y["test"])),
                "variants": variants,
            }
        )
    )


if __name__ == "__main__":
    main()
